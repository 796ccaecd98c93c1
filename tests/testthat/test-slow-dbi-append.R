# Concurrent appends at the scale of issue 36's report: two R processes,
# 15 appends each (DBI and dbx_write_table() alternately) to one table.

test_that("2 x 15 concurrent appends: 30 successes and exactly 30 batches in the table", {
  skip_if_not_slow()
  expect_concurrent_appends(15, "main.dbiapp.full")
})
