# First calls that wait for the local cluster to start something say so once,
# whichever verb makes them; a call that finds it running says nothing
# (R/first-start.R).

test_that("the first Spark-starting call says so, from a table verb or DBI; a later call says nothing", {
  conn <- shared_spark_cluster("main.fst")
  dbx_write_table(data.frame(x = 1:3), "main.fst.t", mode = "overwrite", conn = conn)
  # Spark runs in the connection's context now: nothing to say.
  expect_no_message(dbx_read_table("main.fst.t", conn = conn), class = "dbrxr_start_message")
  # A new context (the old one evicted) starts its own Spark: the first call,
  # a DBI query this time, says so once.
  ctx <- dbrxr:::unwrap(dbrxr:::rust_session_info(conn$handle))$context_id
  dbrxr:::local_control(conn, "POST", "/_local/contexts/evict", list(context_id = ctx))
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  m <- expect_message(DBI::dbGetQuery(con, "SELECT 1 AS one"), class = "dbrxr_spark_start_message")
  expect_match(conditionMessage(m), "Starting Spark on the local cluster", fixed = TRUE)
  expect_no_message(DBI::dbGetQuery(con, "SELECT 2 AS two"), class = "dbrxr_start_message")
  expect_no_message(dbx_read_table("main.fst.t", conn = conn), class = "dbrxr_start_message")
})

test_that("the first MLflow call on a cluster says the MLflow server starts; the next says nothing", {
  skip_if_no_mlflow()
  conn <- local_test_cluster(python = mlflow_python())
  m <- expect_message(dbx_models(conn), class = "dbrxr_mlflow_start_message")
  expect_match(conditionMessage(m), "Starting the local cluster's MLflow server", fixed = TRUE)
  expect_no_message(dbx_models(conn), class = "dbrxr_start_message")
  # Not a Spark call: no Spark message either time.
  expect_no_message(dbx_models(conn), class = "dbrxr_spark_start_message")
})
