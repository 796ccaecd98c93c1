# Job run history and the ids users copy and paste: a run or job id is
# accepted as a number, a string of digits or the run's (job's) URL, and kept
# as text, so it prints in full (a double prints 3574646899253 as
# 3.574647e+12 and loses digits past 2^53).

#' The runs of a job
#'
#' Lists a job's runs, newest first: scheduled, run-now and retried runs
#' alike, with where each one is and how it ended.
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param job A `dbx_job` (from [remote_job()] with a `schedule`), or a job
#'   id (a number, a string of digits or the job's URL).
#' @param limit The most runs to list (the newest).
#' @param conn The connection, when `job` is an id.
#' @return A `dbx_job_runs` data frame, one row per run: `run_id`
#'   (character), `state` (`QUEUED`, `PENDING`, `RUNNING`, `TERMINATED`,
#'   ...), `result` (`SUCCESS`, `FAILED`, `CANCELED`, ...; `NA` while it
#'   runs), `start` (POSIXct, UTC), `duration` (seconds; for a running run,
#'   so far), `trigger` (`PERIODIC`, `ONE_TIME`, `RETRY`, ...) and `url`.
#' @seealso [dbx_run()] (one run, to wait for or get the value of),
#'   [dbx_jobs()]
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' job <- remote_job(quote(Sys.Date()), schedule = "0 0 2 * * ?", conn = conn)
#' dbx_run_result(dbx_job_run_now(job))
#' dbx_job_runs(job)
#' dbx_job_delete(job)
#' dbx_disconnect(conn)
dbx_job_runs <- function(job, limit = 25, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  j <- check_job(job, if (inherits(job, "dbx_job")) NULL else conn, call)
  check_whole(limit, min = 1, call = call)
  local_call_deadline(default_limit(j$conn))
  runs <- jobs_call(j$conn, "list_runs", list(job_id = j$id, max = limit), call = call)
  job_runs_frame(runs)
}

job_runs_frame <- function(runs) {
  col <- function(f, type) vapply(runs, function(r) f(r) %||% type[NA_integer_], type)
  start <- col(function(r) positive(r$start_time), numeric(1))
  end <- col(function(r) positive(r$end_time), numeric(1))
  now <- as.numeric(Sys.time()) * 1000
  out <- data.frame(
    run_id = col(function(r) id_text(r$run_id), character(1)),
    state = col(function(r) r$state$life_cycle_state, character(1)),
    result = col(function(r) r$state$result_state, character(1)),
    start = .POSIXct(start / 1000, tz = "UTC"),
    duration = round((ifelse(is.na(end), now, end) - start) / 1000, 1),
    trigger = col(function(r) r$trigger, character(1)),
    url = col(function(r) r$run_page_url, character(1)),
    stringsAsFactors = FALSE)
  class(out) <- c("dbx_job_runs", "data.frame")
  out
}

positive <- function(ms) if (is.numeric(ms) && length(ms) == 1L && ms > 0) ms

#' @export
print.dbx_job_runs <- function(x, ...) {
  cat(sprintf("<dbx_job_runs> %d run%s, newest first\n", nrow(x), if (nrow(x) == 1L) "" else "s"))
  if (nrow(x)) {
    show <- as.data.frame(x)[c("run_id", "state", "result", "start", "duration", "trigger")]
    show$start <- format(show$start, "%Y-%m-%d %H:%M:%S")
    print(show, row.names = FALSE, ...)
  }
  invisible(x)
}

# ---- ids ----------------------------------------------------------------------------------

# An id from the service (a double from JSON) or the user, as digits.
id_text <- function(x) {
  if (is.null(x) || !length(x) || is.na(x[[1]])) return(NULL)
  if (is.character(x)) return(x[[1]])
  sprintf("%.0f", x[[1]])
}

# A run's or job's id as the user gives it: a whole number, a string of
# digits, or a URL of the run (`https://host/?o=1#job/123/run/456`,
# `https://host/jobs/123/runs/456`) or of the job (`#job/123`, `/jobs/123`).
# The digits, or a dbrxr_input_error before any request.
as_dbx_id <- function(id, kind = c("run", "job"), arg = rlang::caller_arg(id),
                      call = rlang::caller_env()) {
  kind <- match.arg(kind)
  digits <- NULL
  if (is.numeric(id) && length(id) == 1L && !is.na(id) && is.finite(id) && id >= 1 &&
      id == round(id) && id <= 2^53) {
    digits <- sprintf("%.0f", id)
  } else if (is.character(id) && length(id) == 1L && !is.na(id)) {
    s <- trimws(id)
    if (grepl("^[0-9]+$", s)) {
      digits <- s
    } else {
      pattern <- if (kind == "run") "(?:#job/[0-9]+/run/|/jobs/[0-9]+/runs/|/jobs/runs/|#run/)([0-9]+)"
                 else "(?:#job/|/jobs/)([0-9]+)"
      m <- regmatches(s, regexec(pattern, s, perl = TRUE))[[1]]
      if (length(m) == 2L) digits <- m[[2]]
    }
    if (!is.null(digits)) {
      digits <- sub("^0+(?=[0-9])", "", digits, perl = TRUE)
      if (nchar(digits) > 18L || identical(digits, "0")) digits <- NULL
    }
  }
  if (is.null(digits)) {
    abort_dbrxr(sprintf("`%s` must be a %s id: a whole number, a string of digits, or the %s's URL.",
                        arg, kind, kind),
                "dbrxr_input_error",
                problems = if (is.character(id) && length(id) == 1L) sprintf("It is \"%s\".", id)
                           else sprintf("It is %s.", obj_type(id)),
                hints = if (kind == "run") "E.g. 3574646899253, \"3574646899253\" or \"https://<workspace>/#job/12/run/3574646899253\"."
                        else "E.g. 812345, \"812345\" or \"https://<workspace>/#job/812345\".",
                call = call)
  }
  digits
}

# ---- waiting ------------------------------------------------------------------------------

# Ctrl-C while waiting for a run stops the wait, never the run: say so, with
# the run's last known state and how to come back to it.
say_still_running <- function(run, progress) {
  state <- sub("^Run [0-9]+ is ([A-Z_]+).*$", "\\1", progress %||% "")
  if (!grepl("^[A-Z_]+$", state)) state <- run$state %||% "RUNNING"
  try(cli::cli_inform(c("!" = cli_escape(sprintf("Stopped waiting; the run is still %s.", state)),
                        "i" = cli_escape(sprintf("Come back to it with `dbx_run_result(dbx_run(\"%s\"))`, or stop it with `dbx_run_cancel()`.",
                                                 run$run_id)),
                        "i" = cli_escape(run$url)),
                      class = "dbrxr_stopped_waiting_message"),
      silent = TRUE)
}

# ---- checking what a job needs ------------------------------------------------------------

# Before a job is submitted: the packages its request needs, looked up in the
# connection's cluster with `library` first (as the job will run), so a
# missing package is a dbrxr_missing_package_error now, with the call that
# installs it, rather than a failed run later. For a recorded table verb, the
# packages of its model bundle and of the registered model the alias names now.
check_job_packages <- function(plan, library, conn, call) {
  pkgs <- job_packages(plan, conn, call)
  if (!length(pkgs)) return(invisible())
  req <- list(op = "ping", packages = pkgs)
  ans <- remote_request_finish(remote_request_start(conn, req, call = call,
                                                    libpaths = library$path))
  deliver_answer(ans, call = call)
  invisible()
}

job_packages <- function(plan, conn, call) {
  req <- plan$req
  if (identical(plan$target, "r")) return(as.character(req$packages))
  pkgs <- character()
  if (is.raw(req$bundle)) pkgs <- as.character(unserialize(req$bundle)$packages)
  if (!is.null(req$registry_uri)) {
    pkgs <- c(pkgs, as_remote_model(req$registry_uri, call = call, conn = conn)$packages)
  }
  setdiff(unique(pkgs), base_packages)
}
