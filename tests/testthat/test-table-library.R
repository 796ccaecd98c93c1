# Issue 11 meets issue 10: the Spark executors of remote_score_table() load
# packages from the connection's remote_library(), not only the driver. dbxA
# (and its dependency dbxB) exist only in that library: the local cluster's
# contexts, and the executors they start, never see this session's libraries.

test_that("a model whose predict() method lives only in the library scores a table on Spark", {
  skip_if_no_spark()
  # A cluster of its own: remote_library() sets what every later call on the
  # connection (and its Spark executors) puts first on .libPaths().
  conn <- local_cluster(python = spark_python())
  withr::defer(dbx_disconnect(conn))
  repo <- library_test_repo()
  local_test_packages("dbxA")
  model <- dbxA::dbxA_model(10)
  set.seed(11)
  df <- data.frame(id = 1:5000, x = rnorm(5000))
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.tl')", conn)
  dbx_write_table(df, "main.tl.input", mode = "overwrite", conn = conn)

  # Without the library, the cluster has no dbxA: the error names the package.
  err <- expect_error(
    remote_score_table(model, "main.tl.input", output = "main.tl.scored", keep = "id",
                       mode = "overwrite", conn = conn),
    class = "dbrxr_missing_package_error")
  expect_match(conditionMessage(err), "dbxA")

  env <- remote_library("dbxA", repos = repo$url, conn = conn)
  expect_equal(env$packages$package, c("dbxA", "dbxB"))
  res <- remote_score_table(model, "main.tl.input", output = "main.tl.scored", keep = "id",
                            mode = "overwrite", conn = conn)
  expect_s3_class(res, "dbx_table")
  out <- dbx_read_table("main.tl.scored", conn = conn)
  out <- out[order(out$id), ]
  expect_identical(out$id, df$id)
  expect_identical(out$.pred, predict(model, df))
})
