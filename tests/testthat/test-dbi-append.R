# Concurrent appends to one table from two R processes (issue 36: some failed
# with a Spark temporary-directory clash, and a failed call could still have
# written its rows). 2 x 3 here; 2 x 15 in test-slow-dbi-append.R.

test_that("two processes appending to one table at once: every append succeeds, each batch once", {
  expect_concurrent_appends(3, "main.dbiapp.small")
})
