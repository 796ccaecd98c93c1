# First calls that wait for the local cluster to start something say so once,
# whichever verb makes them; a call that finds it running says nothing
# (R/first-start.R).

test_that("the first Spark-starting and MLflow-starting calls each say so once; later calls say nothing", {
  skip_if_no_mlflow()
  conn <- local_test_cluster(python = mlflow_python())
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.fst')", conn)  # not a table verb: says nothing
  # Spark runs in the context now: the first table verb finds it up.
  expect_no_message(dbx_write_table(data.frame(x = 1:3), "main.fst.t", conn = conn),
                    class = "dbrxr_start_message")
  # A new context (the old one evicted) has no Spark: once the connection has
  # its new context, the first Spark call, a DBI query, says so once.
  ctx <- dbrxr:::unwrap(dbrxr:::rust_session_info(conn$handle))$context_id
  dbrxr:::local_control(conn, "POST", "/_local/contexts/evict", list(context_id = ctx))
  expect_identical(remote_eval(1 + 1, conn), 2)  # the new context, bootstrapped
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  m <- expect_message(DBI::dbGetQuery(con, "SELECT 1 AS one"), class = "dbrxr_spark_start_message")
  expect_match(conditionMessage(m), "Starting Spark on the local cluster", fixed = TRUE)
  expect_no_message(DBI::dbGetQuery(con, "SELECT 2 AS two"), class = "dbrxr_start_message")
  expect_no_message(dbx_read_table("main.fst.t", conn = conn), class = "dbrxr_start_message")
  # The MLflow server: the first MLflow call says so, the next says nothing
  # (and neither is a Spark call).
  m <- expect_message(dbx_models(conn), class = "dbrxr_mlflow_start_message")
  expect_match(conditionMessage(m), "Starting the local cluster's MLflow server", fixed = TRUE)
  expect_no_message(dbx_models(conn), class = "dbrxr_start_message")
})
