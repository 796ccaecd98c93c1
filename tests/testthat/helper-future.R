# The future backend's tests: plan(databricks) on a real local cluster.

# One local cluster for test-future.R and test-slow-future.R, of their own:
# plans open and close worker contexts on it, and tests count them
# (dbx_disconnect() closes its workers too).
future_cluster <- local({
  conn <- NULL
  function() {
    if (is.null(conn) || isTRUE(conn$closed)) {
      conn <<- local_test_cluster(.env = testthat::teardown_env())
    }
    conn
  }
})

# Use plan(databricks, ...) for one test, and plan(sequential) after it.
local_databricks_plan <- function(..., .env = parent.frame()) {
  conn <- future_cluster()
  old <- future::plan(databricks, conn = conn, ...)
  withr::defer(future::plan(old), envir = .env)
  conn
}
