# First calls that wait for something to start. The local cluster starts a
# context's Spark session, and its MLflow server, on first use (seconds to a
# minute, with nothing else to show): the call that will wait says so, once,
# whichever verb it is; a call that finds them running says nothing. A
# workspace's running cluster has both up, so only local clusters are asked.
#
# Asked until the answer is "running" (or this call starts it), then
# remembered for the connection, so warm calls cost nothing; a new context
# (bootstrapped after an eviction or a restart, `booted()`) forgets Spark.

say_first_start <- function(conn, target) {
  what <- switch(target, spark = , sql = "spark", mlflow = "mlflow", return(invisible(FALSE)))
  if (!inherits(conn, "dbx_local_connection") || is.null(conn$local)) return(invisible(FALSE))
  st <- remote_state(conn)
  if (what %in% st$started) return(invisible(FALSE))
  status <- tryCatch(local_control(conn, "GET", "/_local/status"), error = function(e) NULL)
  if (is.null(status)) return(invisible(FALSE))
  up <- if (what == "spark") {
    ctx <- tryCatch(unwrap(rust_session_info(conn$handle))$context_id, error = function(e) NULL)
    !is.null(ctx) && ctx %in% unlist(status$spark_contexts)
  } else {
    isTRUE(status$mlflow_server)
  }
  # Running now, or this call starts it.
  st$started <- union(st$started, what)
  if (up) return(invisible(FALSE))
  text <- if (what == "spark") {
    "Starting Spark on the local cluster for this connection (the first table or SQL call; this can take a minute)."
  } else {
    "Starting the local cluster's MLflow server (the first MLflow call; this takes a few seconds)."
  }
  cli::cli_inform(c("i" = text), class = c(sprintf("dbrxr_%s_start_message", what), "dbrxr_start_message"))
  invisible(TRUE)
}
