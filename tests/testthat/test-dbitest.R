# DBItest's core areas against the local cluster's Spark SQL (the others:
# test-slow-dbitest.R), with a report of passed/skipped/failed per area.

test_that("DBItest (getting started, driver, connection, result): every test that applies to Spark SQL passes", {
  expect_dbitest_passes(dbitest_core_areas)
})
