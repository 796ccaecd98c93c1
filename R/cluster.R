#' Cluster status
#'
#' Asks the workspace for the state of the connection's cluster. It does not
#' start the cluster; the first command does that (see [dbx_exec()]).
#'
#' @param conn A `dbx_connection`.
#' @return A `dbx_cluster_status`: a list with `state` (`"RUNNING"`,
#'   `"TERMINATED"`, `"PENDING"`, ...), `state_message`, `cluster_id`,
#'   `cluster_name`, `spark_version`, `data_security_mode`, `num_workers`.
#' @export
#' @examples
#' \donttest{
#' conn <- local_cluster()
#' dbx_cluster_status(conn)
#' dbx_disconnect(conn)
#' }
dbx_cluster_status <- function(conn = dbx_default_connection()) {
  check_connection(conn)
  d <- run_job(unwrap(rust_cluster_status_start(conn$handle)), FALSE)
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
