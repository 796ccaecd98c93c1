# The one place where dbrxr raises conditions. Rust errors arrive as data
# (`list(ok = FALSE, error = list(class, message, hints, status, ...))`) and are
# raised here as classed conditions; R-side checks use `abort_dbrxr()`.

#' dbrxr conditions
#'
#' Every error raised by dbrxr has class `dbrxr_error` plus a specific class:
#'
#' * `dbrxr_config_error`: configuration is missing or contradictory.
#' * `dbrxr_auth_error`: credentials are missing or were rejected.
#' * `dbrxr_http_error` (also `dbrxr_http_<status>`): the API answered with an
#'   error; fields `status`, `error_code`, `request_id`, `attempts`.
#' * `dbrxr_network_error`: the workspace could not be reached.
#' * `dbrxr_timeout_error`: a wait ran out of time; field `last_status`.
#' * `dbrxr_cluster_error`, `dbrxr_context_error`: the cluster or its execution
#'   context cannot be used.
#' * `dbrxr_remote_python_error`: a Python command failed on the cluster;
#'   fields `summary` and `cause`.
#' * `dbrxr_remote_error`: R code failed on the cluster; fields
#'   `remote_message`, `remote_call`, `remote_traceback`.
#' * `dbrxr_missing_package_error`: a package is missing on the cluster; field
#'   `package`.
#' * `dbrxr_input_error`: an argument is invalid (raised before any network call).
#' * `dbrxr_model_not_found_error`, `dbrxr_model_version_not_found_error`,
#'   `dbrxr_model_alias_not_found_error` (all also `dbrxr_not_found_error`):
#'   the registered model, its version or its alias does not exist; fields
#'   `model`, `version`, `alias`. `dbrxr_model_permission_error` (also
#'   `dbrxr_auth_error`): the registry refused access to the model.
#' * `dbrxr_run_not_found_error`, `dbrxr_job_not_found_error`: no job run or
#'   job has that id.
#' * `dbrxr_local_runtime_error` (also a `dbrxr_local_cluster_error`): the
#'   Python environment of `local_cluster(runtime = ...)` is missing or not the
#'   runtime's; fields `runtime` and `make_target` (the make target that builds it).
#' * `dbrxr_io_error`, `dbrxr_cancelled_error`, `dbrxr_local_cluster_error`,
#'   `dbrxr_internal_error`.
#'
#' Catch them with `tryCatch(..., dbrxr_auth_error = function(e) ...)`.
#' Messages never contain tokens or client secrets.
#'
#' @name dbrxr-conditions
#' @examples
#' e <- tryCatch(dbx_connect(host = "https://example.invalid", auth_type = "kerberos",
#'                           token = "x", cluster_id = "c"),
#'               dbrxr_error = function(e) e)
#' class(e)
NULL

# Escape text so cli does not interpret braces in it.
cli_escape <- function(x) {
  x <- gsub("{", "{{", x, fixed = TRUE)
  gsub("}", "}}", x, fixed = TRUE)
}

#' Raise a dbrxr condition
#'
#' @param message What failed (one sentence; not interpolated).
#' @param class The specific class, e.g. `"dbrxr_input_error"`.
#' @param hints Why and what to do, shown as `i` bullets.
#' @param problems Shown as `x` bullets.
#' @param ... Fields stored on the condition.
#' @param call The call to report.
#' @param parent A parent condition.
#' @noRd
abort_dbrxr <- function(message, class, hints = character(), problems = character(),
                        ..., call = rlang::caller_env(), parent = NULL) {
  msg <- c(cli_escape(message),
           stats::setNames(cli_escape(problems), rep("x", length(problems))),
           stats::setNames(cli_escape(hints), rep("i", length(hints))))
  cli::cli_abort(msg, class = unique(c(class, "dbrxr_error")), ..., call = call,
                 parent = parent, .envir = emptyenv())
}

# The Rust core writes its messages as clauses ("no Databricks workspace is
# configured"); a condition's headline starts with a capital letter.
sentence_case <- function(x) {
  if (!is.character(x)) return(x)
  sub("^([a-z])", "\\U\\1", x, perl = TRUE)
}

# Unwrap the tagged list a Rust binding returns: the value, or a raised error.
unwrap <- function(res, call = rlang::caller_env()) {
  if (isTRUE(res$ok)) return(res$value)
  if (!is.list(res) || is.null(res$error)) {
    abort_dbrxr("The Rust core returned a malformed result.", "dbrxr_internal_error",
                hints = "This is a bug in dbrxr; please report it.", call = call)
  }
  raise_rust_error(res$error, call = call)
}

raise_rust_error <- function(err, call = rlang::caller_env()) {
  class <- err$class
  problems <- character()
  if (!is.null(err$status)) {
    detail <- paste0("HTTP ", err$status)
    # Auth errors carry the status again as a numeric error_code: say it once.
    if (!is.null(err$error_code) && !identical(as.character(err$error_code), as.character(err$status))) {
      detail <- paste0(detail, " ", err$error_code)
    }
    if (!is.null(err$request_id)) detail <- paste0(detail, " (request id ", err$request_id, ")")
    if (!is.null(err$attempts) && err$attempts > 1) {
      detail <- paste0(detail, " after ", err$attempts, " attempts")
    }
    problems <- detail
    class <- c(paste0("dbrxr_http_", err$status), class)
    if (!identical(err$class, "dbrxr_http_error")) class <- c(class, "dbrxr_http_error")
  }
  fields <- err$fields
  if (is.null(fields)) fields <- list()
  # A request whose context was lost after it started: not run again, and
  # not known to have finished.
  if (identical(fields$may_have_run, "true")) class <- c("dbrxr_may_have_run_error", class)
  # A runtime profile's Python environment is missing or stale (make runtime-X builds it).
  if (!is.null(fields$make_target)) class <- c("dbrxr_local_runtime_error", class)
  args <- c(list(message = sentence_case(err$message), class = class, hints = unlist(err$hints),
                 problems = problems, status = err$status, error_code = err$error_code,
                 request_id = err$request_id, attempts = err$attempts, call = call),
            fields)
  do.call(abort_dbrxr, args)
}

# Run `expr`, a call bounded by `timeout` seconds (else the default of
# request_timeout()). The Rust core reports a timeout with the time that was
# left for its command; re-raise it naming the limit the user set.
within_limit <- function(expr, conn, timeout, call = rlang::caller_env()) {
  limit <- request_timeout(conn, timeout) %||% the$deadline$limit
  if (is.null(limit)) return(expr)
  tryCatch(expr, dbrxr_timeout_error = function(e) {
    if (is.null(e$final_status)) stop(e)  # not a command's timeout (a cluster start): as it is
    abort_dbrxr(sprintf("The call did not finish within its timeout of %s s.", format(limit)),
                "dbrxr_timeout_error",
                problems = sprintf("The command was cancelled on the cluster (final status: %s).",
                                   e$final_status),
                hints = "Raise `timeout` (or the connection's `timeout` option), or make the code faster.",
                timeout = limit, last_status = e$last_status, final_status = e$final_status,
                command_id = e$command_id, context_id = e$context_id, call = call)
  })
}
