# Two local clusters serve all the files a test process runs (make test runs
# two processes, tools/testthat-summary.R): one whose contexts run R through
# rpy2 (shared_cluster()) and one for Spark, SQL and MLflow
# (shared_spark_cluster()). Each starts on first use and stops when the
# process's run ends, so a context's Spark session and the MLflow server start
# once there, not once per file.
#
# A test that changes what a cluster is (injected faults, killed or evicted
# contexts, restarts, termination, its token, options or state directory)
# starts its own with local_test_cluster() and says why in a comment. Tests
# on a shared cluster use their own names (schemas, tables, globals) and read
# local_stats() as differences, never as totals.

shared_cluster_token <- "shared-test-token-0123456789"
shared_spark_token <- "shared-spark-test-token-0123456789"

shared_clusters <- new.env(parent = emptyenv())

shared_cluster_start <- function(key, python, token) {
  conn <- shared_clusters[[key]]
  if (is.null(conn) || isTRUE(conn$closed)) {
    conn <- local_cluster(python = python, token = token)
    provide_dbrxr_on_cluster(conn)
    withr::defer(dbx_disconnect(conn), envir = testthat::teardown_env())
    shared_clusters[[key]] <- conn
    shared_clusters[[paste0(key, "_schemas")]] <- character()
  }
  conn
}

# The shared rpy2 cluster, also the default connection while the calling test runs.
shared_cluster <- function(.env = parent.frame()) {
  skip_if_no_rpy2()
  conn <- shared_cluster_start("rpy2", local_python(), shared_cluster_token)
  withr::local_options(dbrxr.connection = conn, .local_envir = .env)
  conn
}

# The shared cluster with PySpark (and MLflow, where the venv has it); `schema`
# (e.g. "main.tt") is created once per run.
shared_spark_cluster <- function(schema = NULL, .env = parent.frame()) {
  skip_if_no_spark()
  conn <- shared_cluster_start("spark", spark_python(), shared_spark_token)
  for (s in setdiff(schema, shared_clusters$spark_schemas)) {
    dbx_exec(sprintf("spark.sql('CREATE SCHEMA IF NOT EXISTS %s')", s), conn)
    shared_clusters$spark_schemas <- c(shared_clusters$spark_schemas, s)
  }
  withr::local_options(dbrxr.connection = conn, .local_envir = .env)
  conn
}
