# DBItest's other areas against the local cluster's Spark SQL (the core
# ones: test-dbitest.R).

test_that("DBItest (sql, meta, transaction, compliance): every test that applies to Spark SQL passes", {
  skip_if_not_slow()
  expect_dbitest_passes(dbitest_more_areas)
})
