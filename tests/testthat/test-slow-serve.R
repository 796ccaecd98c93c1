# Stopping the local cluster stops every endpoint's scoring server (its
# process group). A cluster of its own (this test stops it); ~1 minute (Spark,
# the MLflow server and a scoring server start).

test_that("dbx_disconnect() of the local cluster ends its endpoints' server processes", {
  skip_if_not_slow()
  skip_if_no_mlflow()
  conn <- local_cluster(python = mlflow_python())
  withr::defer(if (!isTRUE(conn$closed)) dbx_disconnect(conn))
  provide_dbrxr_on_cluster(conn)
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.sv')", conn)
  fit <- lm(mpg ~ wt, data = mtcars)
  remote_log_model(fit, "main.sv.m", input_example = head(mtcars["wt"]), conn = conn)
  a <- remote_serve("models:/main.sv.m/1", "a", conn = conn)
  b <- remote_serve("models:/main.sv.m/1", "b", conn = conn)
  expect_identical(dbx_endpoint_query(a, mtcars["wt"]), unname(predict(fit, mtcars)))
  pids <- vapply(list(a, b), function(e) as.integer(sub("^.*\\(pid ([0-9]+)\\).*$", "\\1", e$message)), 1L)
  expect_true(all(file.exists(file.path("/proc", pids))))
  dbx_disconnect(conn)
  expect_true(all(vapply(pids, process_gone, TRUE)))
})
