# Running commands on the cluster, and the loop that waits on Rust jobs.
# Every long Rust operation is a job: R waits on it in short slices, so Ctrl-C
# stays with R; on interrupt the job is cancelled (the remote command with it)
# before the interrupt is re-raised.

# Whether to show progress: `progress` if TRUE/FALSE, else while interactive.
want_progress <- function(progress) {
  if (is.null(progress)) interactive() else isTRUE(progress)
}

# Wait for a Rust job and return its value: the one loop every wait on Rust
# goes through. Progress (a cli status with what the job is doing, e.g. the
# cluster's state message) appears after 0.5 s; a job that counts units (a
# remote target's progress reports, e.g. Spark tasks) shows a bar instead.
# `full = TRUE` returns the job's whole final report (value and meta). For
# jobs that carry no deadline of their own, `deadline` (a time) bounds the
# wait: past it the job is cancelled and `on_expiry()` raises the error.
# The call's deadline (R/deadline.R) bounds every wait too; a job that carries
# it itself (`rust_bound`: a request, which cancels its remote command when
# it passes) gets a few seconds more to say so.
# `on_interrupt(last_progress)` says what Ctrl-C left behind (default: the
# remote command was cancelled); the job is cancelled either way.
run_job <- function(job, progress = NULL, call = rlang::caller_env(), full = FALSE,
                    deadline = NULL, on_expiry = NULL, rust_bound = FALSE, on_interrupt = NULL) {
  said <- function() if (is.null(on_interrupt)) say_cancelled() else on_interrupt(last_progress)
  cd <- the$deadline
  if (!is.null(cd)) {
    hard <- cd$at + if (rust_bound) 3 else 0
    if (is.null(deadline) || hard < deadline) {
      deadline <- hard
      on_expiry <- function() abort_call_timeout(cd$limit, last_progress, call = call)
    }
  }
  last_progress <- ""
  done <- FALSE
  expired <- FALSE  # cancelled at the deadline: the error says so, not "Interrupted"
  status <- NULL
  bar <- NULL
  on.exit({
    if (!done) {
      rust_job_cancel(job)
      if (!expired) said()
    }
    if (!is.null(status)) cli::cli_status_clear(status)
    if (!is.null(bar)) try(cli::cli_progress_done(id = bar), silent = TRUE)
  }, add = TRUE)
  show <- want_progress(progress)
  shown <- ""
  repeat {
    slice <- 150
    if (!is.null(deadline)) {
      left <- as.numeric(difftime(deadline, Sys.time(), units = "secs"))
      if (left <= 0) {
        expired <- TRUE
        on_expiry()  # on.exit cancels the job
      }
      slice <- min(slice, max(1, left * 1000))
    }
    st <- rust_job_wait(job, slice)
    if (!isTRUE(st$ok)) done <- TRUE
    st <- unwrap(st, call = call)
    if (length(st$progress) && nzchar(st$progress)) last_progress <- st$progress
    if (isTRUE(st$done)) {
      done <- TRUE
      return(if (full) st else st$value)
    }
    if (isTRUE(st$interrupted)) {
      done <- TRUE
      rust_job_cancel(job)
      said()
      rlang::interrupt()
    }
    if (!show) next
    if (length(st$units) == 2L && st$units[2] > 0) {
      if (!is.null(status)) {
        cli::cli_status_clear(status)
        status <- NULL
      }
      bar <- progress_units(bar, st$units, st$unit_text)
    } else if (is.null(bar) && st$elapsed > 0.5 && nzchar(st$progress) && !identical(st$progress, shown)) {
      shown <- st$progress
      msg <- cli_escape(shown)
      if (is.null(status)) status <- cli::cli_status(msg, .auto_close = FALSE)
      else cli::cli_status_update(status, msg)
    }
  }
}

# Ctrl-C (or an R error) while a command runs: it is cancelled on the cluster,
# and the user is told so before the interrupt unwinds.
say_cancelled <- function() {
  try(cli::cli_inform(c("!" = "Interrupted: the remote command was cancelled on the cluster."),
                      class = "dbrxr_cancelled_message"), silent = TRUE)
}

# A bar of counted units, made or moved. Without auto_terminate: cli removes
# an auto-terminating bar when done == total, and the next stage's update
# then hits a dead id ("Cannot find progress bar"). A display problem never
# fails the call.
progress_units <- function(bar, units, text) {
  tryCatch({
    if (is.null(bar)) {
      bar <- cli::cli_progress_bar(if (length(text) && nzchar(text)) text else "Working",
                                   total = units[2], auto_terminate = FALSE, .auto_close = FALSE)
    }
    cli::cli_progress_update(id = bar, set = min(units[1], units[2]), total = units[2])
    bar
  }, error = function(e) bar)
}

languages <- c("python", "sql", "scala", "r")

#' Run a command on the cluster (internal)
#'
#' Submits `code` to the connection's execution context (created, and the
#' cluster started, on first use), polls until it ends and returns the raw
#' result. Python errors, timeouts and interrupts raise the same conditions as
#' [dbx_exec()].
#'
#' @param poll_fixed Benchmarks only: poll every `poll_fixed` seconds (as peers do).
#' @return A list: `status`, `resultType`, `data`, `summary`, `cause`,
#'   `truncated`, `schema`, `fileName`, `fileNames`, `context_id`, `command_id`.
#' @noRd
exec_command <- function(conn, code, language = "python", timeout = NULL, progress = NULL,
                         call = rlang::caller_env(), poll_fixed = NULL) {
  check_connection(conn, call = call)
  check_text(code, null_ok = FALSE, call = call)
  check_text(language, null_ok = FALSE, call = call)
  check_number(timeout, min = 0, call = call)
  check_flag(progress, call = call)
  language <- tolower(language)
  if (!language %in% languages) {
    abort_dbrxr(sprintf("`language` must be one of %s.", paste0("\"", languages, "\"", collapse = ", ")),
                "dbrxr_input_error", problems = sprintf("It is \"%s\".", language), call = call)
  }
  job <- exec_start(conn, code, language, timeout, poll_fixed, call = call)
  res <- run_job(job, progress %||% conn$options$progress, call = call, rust_bound = TRUE)
  for (f in c("summary", "cause")) if (is.null(res[[f]])) res[f] <- list(NULL)
  res
}

# Start a command as a Rust job (wait with run_job()); callers that overlap
# work with the command (chunked scoring) use this directly.
exec_start <- function(conn, code, language = "python", timeout = NULL, poll_fixed = NULL,
                       poll_max = NULL, call = rlang::caller_env()) {
  opts <- conn$options
  unwrap(rust_exec_start(conn$handle, code, language, cap_timeout(timeout), poll_max %||% opts$poll_max,
                         opts$cluster_timeout, poll_fixed), call = call)
}

#' Run a raw command on the cluster
#'
#' Runs `code` in the connection's execution context, the same one every call
#' of the connection reuses (created, and the cluster started, on first use),
#' and returns the parsed result. This is the low-level verb; to run R code
#' remotely use [remote_eval()] or [remote_score()].
#'
#' Waiting is adaptive: the first status check comes a few milliseconds after
#' submitting and the interval grows to `poll_max` (see [dbx_connect()]), so
#' short commands return fast. Pressing Ctrl-C (or Esc in RStudio) cancels the
#' command on the cluster and keeps the context usable.
#'
#' @param code The command text.
#' @param conn A `dbx_connection`.
#' @param language `"python"` (default), `"sql"`, `"scala"` or `"r"`.
#' @param timeout Seconds to wait before cancelling the command and raising
#'   `dbrxr_timeout_error` (field `last_status`); `NULL` uses the connection's
#'   `timeout` option, and without one waits forever.
#' @return For text output, a string (IPython's `Out[n]:` prefix removed);
#'   for a table, a data.frame; for images, a `dbx_image` (the image file
#'   names or data URLs). A Python exception raises `dbrxr_remote_python_error`
#'   with fields `summary` and `cause` (HTML and ANSI codes removed).
#' @seealso [dbx_upload()], [dbx_cluster_status()].
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' dbx_exec("print(1 + 1)", conn)
#' dbx_exec("import sys\nsys.version_info.major", conn)
#' e <- tryCatch(dbx_exec("1/0", conn), dbrxr_remote_python_error = function(e) e)
#' e$summary
#' dbx_disconnect(conn)
dbx_exec <- function(code, conn = dbx_default_connection(), language = "python", timeout = NULL) {
  check_not_connection(code)
  if (is.null(timeout) && inherits(conn, "dbx_connection")) timeout <- conn$options$timeout
  # Checked by exec_command(); tolower() here must not fail on bad input first.
  is_sql <- is.character(language) && length(language) == 1L && isTRUE(validUTF8(language)) &&
    identical(tolower(language), "sql")
  res <- if (is_sql) {
    tryCatch(exec_command(conn, code, language = language, timeout = timeout),
             dbrxr_remote_python_error = function(e) abort_exec_sql(e, code))
  } else {
    exec_command(conn, code, language = language, timeout = timeout)
  }
  if (isTRUE(res$truncated)) {
    cli::cli_warn(c("The output of the command was truncated by the cluster.",
                    "i" = "Write large results to a file and fetch it with {.fn dbx_download}."),
                  class = c("dbrxr_truncated_warning", "dbrxr_warning"))
  }
  switch(res$resultType %||% "text",
    text = if (is.null(res$data)) "" else as.character(res$data),
    table = exec_table(res),
    image = ,
    images = structure(list(files = as.character(unlist(c(res$fileName, res$fileNames)))),
                       class = "dbx_image"),
    res$data)
}

# A failed `language = "sql"` command as the DBI backend's dbrxr_sql_error
# (still a dbrxr_remote_python_error with `summary` and `cause`), with Spark's
# error class, SQLSTATE and position read from the service's summary.
abort_exec_sql <- function(e, code) {
  summary <- e$summary %||% conditionMessage(e)
  field <- function(pattern) {
    m <- regmatches(summary, regexec(pattern, summary, perl = TRUE))[[1]]
    if (length(m) > 1L) m[2] else NULL
  }
  line <- field("\\(line (\\d+), pos (?:\\d+)\\)")
  pos <- field("\\(line (?:\\d+), pos (\\d+)\\)")
  abort_dbrxr(paste("Spark SQL failed:", summary), c("dbrxr_sql_error", "dbrxr_remote_python_error"),
              summary = summary, cause = e$cause, error_class = field("\\[([A-Z][A-Z0-9_]*(?:\\.[A-Z0-9_]+)*)\\]") %||% "",
              sqlstate = field("SQLSTATE:? ?([0-9A-Z]{5})") %||% "",
              line = if (!is.null(line)) as.numeric(line), pos = if (!is.null(pos)) as.numeric(pos),
              statement = code, call = e$call)
}

#' @export
print.dbx_image <- function(x, ...) {
  cat(sprintf("<dbx_image> %d image%s\n", length(x$files), if (length(x$files) == 1) "" else "s"))
  for (f in x$files) cat("  ", if (nchar(f) > 70) paste0(substr(f, 1, 67), "...") else f, "\n", sep = "")
  invisible(x)
}

# A `table` result (rows of values plus a schema) as a data.frame.
exec_table <- function(res) {
  schema <- res$schema %||% list()
  rows <- res$data %||% list()
  nms <- vapply(schema, function(s) as.character(s$name %||% ""), "")
  types <- vapply(schema, function(s) table_type(s$type), "")
  cols <- lapply(seq_along(schema), function(j) {
    table_column(lapply(rows, function(r) r[[j]]), types[[j]])
  })
  # A statement with no result columns (DROP TABLE) is a data frame of none.
  nms[!nzchar(nms)] <- paste0("V", which(!nzchar(nms)))
  names(cols) <- make.unique(nms)
  as.data.frame(cols, stringsAsFactors = FALSE, check.names = FALSE)
}

# Hive type names; with isJsonSchema the type is JSON text such as "\"string\"".
table_type <- function(type) {
  if (!is.character(type) || length(type) != 1L) return("string")
  tolower(gsub('^"|"$', "", type))
}

table_column <- function(vals, type) {
  na <- vapply(vals, function(v) is.null(v) || length(v) != 1L, TRUE)
  vals[na] <- NA
  flat <- unlist(vals, use.names = FALSE)
  if (is.null(flat)) flat <- logical()
  if (type %in% c("int", "integer", "smallint", "tinyint", "short", "byte")) return(as.integer(flat))
  if (type %in% c("bigint", "long", "double", "float", "real") || startsWith(type, "decimal")) {
    return(as.numeric(flat))
  }
  if (type %in% c("boolean", "bool")) return(as.logical(flat))
  as.character(flat)
}
