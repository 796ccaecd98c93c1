#' Cluster status
#'
#' Asks the workspace for the state of the connection's cluster. It does not
#' start the cluster; the first command does that (see [dbx_exec()]).
#'
#' @param conn A `dbx_connection`.
#' @param timeout Seconds to wait for the answer before raising
#'   `dbrxr_timeout_error`; `NULL` uses the connection's `timeout` option,
#'   else the option `dbrxr.timeout`, else 60 seconds. A workspace that
#'   stalls never makes this call hang.
#' @return A `dbx_cluster_status`: a list with `state` (`"RUNNING"`,
#'   `"TERMINATED"`, `"PENDING"`, ...), `state_message`, `cluster_id`,
#'   `cluster_name`, `spark_version`, `data_security_mode`, `num_workers`.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' dbx_cluster_status(conn)
#' dbx_cluster_status(conn, timeout = 5)
#' dbx_disconnect(conn)
dbx_cluster_status <- function(conn = dbx_default_connection(), timeout = NULL) {
  check_connection(conn)
  check_number(timeout, min = 0)
  limit <- request_timeout(conn, timeout) %||% status_timeout_default
  d <- run_job_within(unwrap(rust_cluster_status_start(conn$handle)), limit,
                      "asking for the cluster's status")
  structure(list(
    state = d$state %||% "UNKNOWN",
    state_message = d$state_message %||% "",
    cluster_id = d$cluster_id %||% conn$info$cluster_id,
    cluster_name = d$cluster_name,
    spark_version = d$spark_version,
    data_security_mode = d$data_security_mode,
    num_workers = d$num_workers
  ), class = "dbx_cluster_status")
}

# Status calls are quick when the workspace is well: one that takes longer
# than this is stuck (a stalled answer is retried until then).
status_timeout_default <- 60

# Wait for a Rust job for at most `limit` seconds; past it the job (and its
# requests) is cancelled and the error is `dbrxr_timeout_error`. For calls
# whose Rust job carries no deadline of its own (status calls).
run_job_within <- function(job, limit, what, call = rlang::caller_env()) {
  run_job(job, FALSE, call = call, deadline = Sys.time() + limit, on_expiry = function() {
    abort_dbrxr(sprintf("The call did not finish within its timeout of %s s (%s).", format(limit), what),
                "dbrxr_timeout_error",
                hints = c("The workspace did not answer in time: it may be overloaded, or the network stalled.",
                          "Raise `timeout` (or the connection's `timeout` option) if it is just slow."),
                timeout = limit, call = call)
  })
}

#' @export
format.dbx_cluster_status <- function(x, ...) {
  line <- function(label, value) if (length(value) && nzchar(value)) sprintf("  %-9s %s", label, value)
  c(sprintf("<dbx_cluster_status> %s%s", x$cluster_id,
            if (length(x$cluster_name)) sprintf(" (%s)", x$cluster_name) else ""),
    line("state:", paste0(x$state, if (nzchar(x$state_message)) paste0(": ", x$state_message) else "")),
    line("runtime:", x$spark_version %||% ""),
    line("access:", x$data_security_mode %||% ""),
    line("workers:", if (is.null(x$num_workers)) "" else format(x$num_workers)))
}

#' @export
print.dbx_cluster_status <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}
