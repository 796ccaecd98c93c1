# One local cluster with Spark for the SQL suites (test-dbi*, test-dbitest,
# test-dbplyr, test-connections-pane): its Spark session starts once per run.
sql_conn <- local({
  conn <- NULL
  function() {
    skip_if_no_spark()
    skip_if_not_installed("DBI")
    if (is.null(conn) || isTRUE(conn$closed)) {
      conn <<- local_cluster(python = spark_python())
      withr::defer(dbx_disconnect(conn), envir = testthat::teardown_env())
    }
    conn
  }
})

sql_con <- function(.env = parent.frame()) {
  con <- DBI::dbConnect(databricks_sql(), conn = sql_conn())
  withr::defer(if (DBI::dbIsValid(con)) DBI::dbDisconnect(con), envir = .env)
  con
}
