# The slow tier of test-table.R: a table of 100,000 rows.

test_that("seven model types score a 100,000-row table identical() to local predict()", {
  skip_if_not_slow()
  # Four partitions, each cut into Arrow batches of 10,000 rows.
  score_seven_models(shared_spark_cluster("main.tt"), n = 100000, partitions = 4)
})
