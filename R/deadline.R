# One deadline per call. A verb's `timeout` bounds the whole call: every Rust
# job it waits on and every request it sends, whatever it does in between (a
# registry lookup before scoring, the checks of dbx_sitrep(), the API calls of
# dbx_run()). Verbs without a `timeout` argument get a default one.
#
# The deadline is dynamically scoped, as the Rust core's task-local one is
# (src/rust/src/deadline.rs): the verb sets it (local_call_deadline()), and
# run_job(), the one loop that waits on Rust, and cap_timeout(), the time a
# request hands to Rust, read it. An enclosing deadline that is sooner wins.

# The default deadline of the API verbs without a `timeout` argument
# (dbx_run(), dbx_run_status(), dbx_jobs(), ...): they ask the workspace one
# or two questions, and a workspace that takes longer than this is stuck.
api_timeout_default <- 60

# The default deadline of a DBI call (dbGetQuery(), dbExecute(), dbFetch(),
# ...): a query may run long, but not forever on a workspace that stalls.
dbi_timeout_default <- 3600

# Set the call's deadline `limit` seconds from now until `.env` exits; NULL
# (no limit) leaves things as they are. Returns the limit.
local_call_deadline <- function(limit, .env = parent.frame()) {
  if (is.null(limit)) return(invisible(NULL))
  old <- the$deadline
  at <- Sys.time() + limit
  if (!is.null(old) && old$at <= at) return(invisible(limit))
  the$deadline <- list(at = at, limit = limit)
  do.call(base::on.exit, list(call("restore_call_deadline", old), add = TRUE), envir = .env)
  invisible(limit)
}

restore_call_deadline <- function(old) {
  the$deadline <- old
}

# The limit of a verb without a `timeout` argument: the connection's `timeout`
# option, else the option `dbrxr.timeout`, else `default` seconds.
default_limit <- function(conn, default = api_timeout_default) {
  request_timeout(conn, NULL) %||% default
}

# Seconds left before the call's deadline (NULL: none).
call_time_left <- function() {
  d <- the$deadline
  if (is.null(d)) return(NULL)
  max(0.001, as.numeric(difftime(d$at, Sys.time(), units = "secs")))
}

# The time a Rust job may take: `timeout` (seconds, NULL: none), never past
# the call's deadline.
cap_timeout <- function(timeout) {
  left <- call_time_left()
  if (is.null(left)) return(timeout)
  if (is.null(timeout)) left else min(timeout, left)
}

# The error of a call whose deadline passed while waiting for `doing`.
abort_call_timeout <- function(limit, doing = "", call = rlang::caller_env()) {
  what <- if (nzchar(doing %||% "")) sprintf(" (while: %s)", doing) else ""
  abort_dbrxr(sprintf("The call did not finish within its timeout of %s s%s.", format(limit), what),
              "dbrxr_timeout_error",
              hints = c("The workspace did not answer in time: it may be overloaded, or the network stalled.",
                        "Raise `timeout` (or the connection's `timeout` option, or the option `dbrxr.timeout`) if it is just slow."),
              timeout = limit, call = call)
}
