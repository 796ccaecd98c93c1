# The SQL suites (test-dbi*, test-dbitest, test-dbplyr, test-connections-pane)
# run on the run's shared Spark cluster: its Spark session starts once per run.
sql_conn <- function() {
  skip_if_not_installed("DBI")
  shared_spark_cluster()
}

sql_con <- function(.env = parent.frame()) {
  con <- DBI::dbConnect(databricks_sql(), conn = sql_conn())
  withr::defer(if (DBI::dbIsValid(con)) DBI::dbDisconnect(con), envir = .env)
  con
}
