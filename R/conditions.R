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
  args <- c(list(message = sentence_case(err$message), class = class, hints = unlist(err$hints),
                 problems = problems, status = err$status, error_code = err$error_code,
                 request_id = err$request_id, attempts = err$attempts, call = call),
            fields)
  do.call(abort_dbrxr, args)
}

# Argument checks: raise dbrxr_input_error before any network call.
check_string <- function(x, arg = rlang::caller_arg(x), null_ok = TRUE,
                         call = rlang::caller_env()) {
  if (is.null(x) && null_ok) return(invisible(x))
  if (!is.character(x) || length(x) != 1L || is.na(x)) {
    abort_dbrxr(sprintf("`%s` must be a single string%s.", arg, if (null_ok) " or NULL" else ""),
                "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(x)), call = call)
  }
  check_utf8(x, arg, call = call)
}

# Strings sent to the cluster or the workspace (code, names, paths,
# settings) must be UTF-8 text: their bytes are what the Rust core sends, so
# the bytes are checked, whatever the encoding mark or the locale. The bytes
# are never shown (a secret may be among them): only where the first bad one is.
check_utf8 <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (!is.character(x)) return(invisible(x))
  bad <- which(!is.na(x) & !validUTF8(x))
  if (length(bad)) {
    i <- bad[[1]]
    bytes <- charToRaw(x[[i]])
    at <- first_invalid_utf8(bytes)
    abort_dbrxr(sprintf("`%s` is not valid UTF-8 text.", arg), "dbrxr_input_error",
                problems = sprintf("%sbyte %d of %d is not part of a UTF-8 character.",
                                   if (length(x) > 1L) sprintf("In element %d, ", i) else "",
                                   at, length(bytes)),
                hints = c("Convert it first: `enc2utf8(x)` for text marked latin1, `iconv(x, from = \"latin1\", to = \"UTF-8\")` for text read in another encoding.",
                          "Binary data travels as a raw vector or inside R objects, not as text."),
                call = call)
  }
  invisible(x)
}

# 1-based position of the first byte that breaks UTF-8 in `bytes`.
first_invalid_utf8 <- function(bytes) {
  lo <- 1L
  hi <- length(bytes)
  # The longest valid prefix, by bisection on validUTF8() of prefixes.
  while (lo < hi) {
    mid <- (lo + hi) %/% 2L
    if (validUTF8(rawToChar(bytes[seq_len(mid)]))) lo <- mid + 1L else hi <- mid
  }
  lo
}

# `finite = TRUE` (the default) refuses Inf and -Inf as well as NA/NaN:
# limits and intervals are numbers of seconds, items or bytes.
check_number <- function(x, arg = rlang::caller_arg(x), null_ok = TRUE, min = -Inf,
                         finite = TRUE, call = rlang::caller_env()) {
  if (is.null(x) && null_ok) return(invisible(x))
  if (!is.numeric(x) || length(x) != 1L || is.na(x) || x < min || (finite && !is.finite(x))) {
    infinite <- is.numeric(x) && length(x) == 1L && is.infinite(x)
    abort_dbrxr(sprintf("`%s` must be a single number%s%s.", arg,
                        if (is.finite(min)) paste0(" >= ", min) else "",
                        if (null_ok) " or NULL" else ""),
                "dbrxr_input_error",
                problems = if (infinite) sprintf("It is %s: only finite numbers are allowed.", format(x))
                           else if (is.numeric(x) && length(x) == 1L && is.nan(x)) "It is NaN."
                           else sprintf("It is %s.", obj_type(x)),
                call = call)
  }
  invisible(x)
}

check_flag <- function(x, arg = rlang::caller_arg(x), null_ok = TRUE,
                       call = rlang::caller_env()) {
  if (is.null(x) && null_ok) return(invisible(x))
  if (!is.logical(x) || length(x) != 1L || is.na(x)) {
    abort_dbrxr(sprintf("`%s` must be TRUE or FALSE.", arg), "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(x)), call = call)
  }
  invisible(x)
}

# Options passed in `...` must be named and known. A misspelt option (or a
# misspelt argument of the function, listed in `args`) gets "did you mean".
check_option_names <- function(opts, known, hints, call = rlang::caller_env(),
                               args = character()) {
  if (length(opts) && (is.null(names(opts)) || any(!nzchar(names(opts))))) {
    abort_dbrxr("Options in `...` must be named.", "dbrxr_input_error", hints = hints, call = call)
  }
  unknown <- setdiff(names(opts), known)
  if (length(unknown)) {
    guesses <- did_you_mean(unknown, c(args, known))
    abort_dbrxr(sprintf("Unknown option%s: %s.", if (length(unknown) > 1) "s" else "",
                        paste0("`", unknown, "`", collapse = ", ")),
                "dbrxr_input_error", hints = c(guesses, hints), call = call)
  }
  invisible(opts)
}

# "Did you mean `host`?" for names close to a known one (at most 2 edits).
did_you_mean <- function(names, candidates) {
  candidates <- setdiff(unique(candidates), "...")
  out <- character()
  for (nm in names) {
    if (!length(candidates)) break
    d <- utils::adist(nm, candidates, ignore.case = TRUE)[1, ]
    if (min(d) <= min(2, max(1, nchar(nm) %/% 2))) {
      out <- c(out, sprintf("`%s`: did you mean `%s`?", nm, candidates[which.min(d)]))
    }
  }
  out
}

# An argument given as "" (often `Sys.getenv()` of an unset variable) is named
# as empty, instead of counting as not given.
check_not_empty <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (is.character(x) && length(x) == 1L && !is.na(x) && !nzchar(trimws(x))) {
    abort_dbrxr(sprintf("`%s` is empty.", arg), "dbrxr_input_error",
                hints = c(sprintf("Pass the %s itself, or leave `%s` out to use the environment variables or a profile.", arg, arg),
                          "An empty value often comes from `Sys.getenv()` of a variable that is not set."),
                call = call)
  }
  invisible(x)
}

obj_type <- function(x) {
  if (is.null(x)) return("NULL")
  if (length(x) != 1L) return(sprintf("a %s vector of length %d", class(x)[1], length(x)))
  if (is.na(x)) return("NA")
  sprintf("a %s", class(x)[1])
}

# Run `expr`, a call bounded by `timeout` seconds (else the default of
# request_timeout()). The Rust core reports a timeout with the time that was
# left for its command; re-raise it naming the limit the user set.
within_limit <- function(expr, conn, timeout, call = rlang::caller_env()) {
  limit <- request_timeout(conn, timeout)
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
