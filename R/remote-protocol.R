# The client side of the one protocol. A request is an R list for a
# *target* in the context: "r" (the dispatcher, inst/remote/dispatcher.R) or
# one of dbrxr's Python modules (inst/python/dbrxr_<target>.py: "spark" for
# tables, and the verbs built on it). Rust (src/rust/src/protocol.rs) carries
# it: one Python command calling the bootstrap module (inst/python), inline
# or staged, answered inline or staged, exactly once, within one deadline.
# R builds no Python source and reads no markers; values never appear in
# generated source.

protocol_version <- 1L

# Limits, overridable by options for tests and benchmarks (see Limits in
# src/rust/src/protocol.rs for why answers inline stop at 30,000 bytes).
inline_answer_max <- function() getOption("dbrxr.inline_answer_max", 30000)
inline_request_max <- function() getOption("dbrxr.inline_request_max", 1024 * 1024)
chunk_target_bytes <- function() getOption("dbrxr.chunk_bytes", 24 * 1024 * 1024)

# The protocol state of a connection lives in conn$remote:
#   info     what the last bootstrap reported (R, rpy2, platform)
#   objects  environment: hash -> TRUE for objects believed cached remotely
#   stats    environment of counters (requests, bytes sent and received)
remote_state <- function(conn) {
  st <- conn$remote
  if (is.null(st$objects)) {
    st$objects <- new.env(parent = emptyenv())
    st$stats <- new.env(parent = emptyenv())
    st$stats$requests <- 0
    st$stats$bytes_sent <- 0
    st$stats$bytes_received <- 0
    st$stats$bootstraps <- 0
  }
  st
}

read_source <- function(dir, file) {
  path <- system.file(dir, file, package = "dbrxr")
  if (!nzchar(path)) {
    abort_dbrxr(sprintf("dbrxr's %s/%s is missing from the installed package.", dir, file),
                "dbrxr_internal_error", hints = "Reinstall dbrxr.")
  }
  readBin(path, "raw", file.size(path))
}

# Every source a context needs, by file name: the bootstrap module, the
# Python targets (all of inst/python) and the R dispatcher. Read once.
protocol_sources <- function() {
  if (is.null(the$protocol_sources)) {
    dir <- system.file("python", package = "dbrxr")
    py <- sort(list.files(dir, pattern = "\\.py$"))
    src <- lapply(py, function(f) read_source("python", f))
    names(src) <- py
    src[["dispatcher.R"]] <- read_source("remote", "dispatcher.R")
    the$protocol_sources <- src
  }
  the$protocol_sources
}

# The Python of the bootstrap command and of one request, and the marker of
# an answer: generated and parsed in Rust (src/rust/src/protocol.rs); these
# wrappers let tests run them outside a cluster.
bootstrap_code <- function(install_rpy2) {
  unwrap(rust_bootstrap_code(protocol_sources(), isTRUE(install_rpy2)))
}
call_code <- function(req_raw, req_paths, result_path, request_id = "r1", target = "r") {
  unwrap(rust_call_code(request_id, target, protocol_sources(), req_raw, req_paths,
                        result_path %||% "", inline_answer_max()))
}
parse_marker <- function(text, call = rlang::caller_env()) {
  unwrap(rust_parse_marker(paste(text, collapse = "\n")), call = call)
}

# The protocol lives in Rust; it gets the sources once per connection.
protocol_setup <- function(conn, call = rlang::caller_env()) {
  st <- remote_state(conn)
  if (isTRUE(st$setup)) return(invisible())
  unwrap(rust_protocol_setup(conn$handle, protocol_sources(),
                             isTRUE(conn$options$install_rpy2)), call = call)
  st$setup <- TRUE
  invisible()
}

# Install the bootstrap module in the connection's context now (requests
# also do it themselves when needed).
remote_bootstrap <- function(conn, timeout = NULL, call = rlang::caller_env()) {
  protocol_setup(conn, call = call)
  opts <- conn$options
  job <- unwrap(rust_bootstrap_start(conn$handle, cap_timeout(request_timeout(conn, timeout)),
                                     opts$poll_max, opts$cluster_timeout), call = call)
  booted(conn, run_job(job, FALSE, call = call, rust_bound = TRUE))
}

# A bootstrap happened: remember what it reported; a new context has none of
# the objects shipped before.
booted <- function(conn, info) {
  st <- remote_state(conn)
  st$info <- info
  st$stats$bootstraps <- st$stats$bootstraps + 1
  rm(list = ls(st$objects), envir = st$objects)
  # A new context: its Spark is not started yet (R/first-start.R).
  st$started <- setdiff(st$started, "spark")
  invisible(info)
}

# The timeout of a request: the argument, else the connection's `timeout`
# option, else the `dbrxr.timeout` option.
request_timeout <- function(conn, timeout) {
  conn_timeout <- if (inherits(conn, "dbx_connection")) conn$options$timeout
  timeout %||% conn_timeout %||% getOption("dbrxr.timeout")
}

# Send one request (a list) and return the dispatcher's answer (a list).
# `timeout` (seconds; NULL: the option `dbrxr.timeout`, else none) bounds
# the whole request: upload, command, download. On expiry the remote
# command is cancelled and the error is `dbrxr_timeout_error`.
remote_request <- function(conn, req, timeout = NULL, call = rlang::caller_env()) {
  remote_request_finish(remote_request_start(conn, req, timeout = timeout, call = call))
}

# The protocol's async API (for the future backend and chunked scoring):
#   remote_request_start(conn, req, timeout)  start a request; returns a handle
#   remote_request_done(handle)               TRUE once finished; one status
#                                             check, never blocks
#   remote_request_finish(handle)             wait; the answer list, or raise
#   remote_request_cancel(handle)             stop it, cancelling the remote
#                                             command
# Requests of one connection reach the cluster in the order they started.
# A request is one Rust job: R hands over the request list (Rust serializes
# it, as serialize(xdr = FALSE) does) and gets the answer's bytes back (see
# src/rust/src/protocol.rs).
remote_request_start <- function(conn, req, timeout = NULL, call = rlang::caller_env(),
                                 target = "r", progress = FALSE,
                                 libpaths = remote_state(conn)$library$path) {
  protocol_setup(conn, call = call)
  req$protocol <- protocol_version
  req$libpaths <- libpaths  # the connection's remote_library() (default), first
  opts <- conn$options
  h <- new.env(parent = emptyenv())
  h$conn <- conn
  h$call <- call
  h$progress <- isTRUE(progress)
  # The kind of request (operation, object; Rust adds the target and the
  # size) lets Rust check the command's status when such requests finish.
  kind <- paste(format(req$op), req$hash %||% "")
  limit <- cap_timeout(request_timeout(conn, timeout))
  # A Python target bounds its own waits by it (MLflow's retries: dbrxr_mlflow.py).
  if (!identical(target, "r") && !is.null(limit)) req$time_left <- limit
  h$job <- unwrap(rust_request_start(conn$handle, target, req, kind, limit,
                                     opts$poll_max, opts$cluster_timeout,
                                     c(inline_request_max(), inline_answer_max()),
                                     isTRUE(progress)), call = call)
  h
}

# Asks the job without waiting and without taking its result, so that
# remote_request_finish() always collects it the same way.
remote_request_done <- function(handle) {
  if (is.null(handle$job)) return(TRUE)
  unwrap(rust_job_done(handle$job), call = handle$call)
}

remote_request_finish <- function(handle) {
  call <- handle$call
  job <- handle$job
  handle$job <- NULL
  if (is.null(job)) {
    abort_dbrxr("This remote request was cancelled.", "dbrxr_cancelled_error", call = call)
  }
  request_answer(handle$conn, run_job(job, handle$progress %||% FALSE, call = call, full = TRUE,
                                     rust_bound = TRUE),
                 call = call)
}

remote_request_cancel <- function(handle) {
  if (!is.null(handle$job)) try(rust_job_cancel(handle$job), silent = TRUE)
  handle$job <- NULL
  invisible(handle)
}

# One request to a Python target (inst/python/dbrxr_<target>.py): its
# handler's value. A target's error (`list(class, message, ...)`) goes to
# `errors(err, call)`, which raises the verb's own conditions (or returns a
# value to return instead); without it (or when it returns NULL) it is a
# dbrxr_remote_error. `progress`: show the target's
# progress reports as a bar (NULL: the connection's option, else while
# interactive).
remote_target <- function(conn, target, req, timeout = NULL, progress = FALSE, errors = NULL,
                          call = rlang::caller_env()) {
  show <- want_progress(progress %||% conn$options$progress)
  say_first_start(conn, target)
  ans <- remote_request_finish(remote_request_start(conn, req, timeout = timeout, call = call,
                                                    target = target, progress = show))
  if (identical(ans$status, "ok")) return(ans$value)
  err <- ans$error
  if (!is.null(errors)) {
    handled <- errors(err, call)
    if (!is.null(handled)) return(handled)
  }
  abort_dbrxr(sprintf("dbrxr's %s module failed on the cluster: %s", target,
                      err$message %||% "(no message)"),
              "dbrxr_remote_error",
              remote_message = err$message, remote_class = err$class,
              remote_traceback = err$traceback, call = call)
}

# The finished job's answer bytes and facts: counters, a bootstrap on the way.
request_answer <- function(conn, res, call) {
  st <- remote_state(conn)
  meta <- res$meta
  if (!is.null(meta$bootstrap)) booted(conn, meta$bootstrap)
  st$stats$requests <- st$stats$requests + 1
  st$stats$bytes_sent <- st$stats$bytes_sent + (meta$bytes_sent %||% 0)
  st$stats$bytes_received <- st$stats$bytes_received + length(res$value)
  unserialize(res$value)
}

# Chunked scoring's pipeline (remote-score.R): begin starts the request (its
# upload and command run in Rust while R prepares the next chunk), finish
# waits for it, cleanup cancels one that is still running.
request_begin <- function(conn, req, deadline = NULL, call = rlang::caller_env()) {
  remote_request_start(conn, req, timeout = time_left(deadline), call = call)
}
request_submit <- function(conn, p) invisible(p)
request_finish <- function(conn, p) remote_request_finish(p)
request_cleanup <- function(conn, p) {
  if (!is.null(p)) remote_request_cancel(p)
  invisible()
}

exec_output <- function(res) if (is.null(res$data)) "" else as.character(res$data)

# When a call with `timeout` seconds (else the default of request_timeout())
# must end; NULL for no limit.
request_deadline <- function(conn, timeout = NULL) {
  timeout <- request_timeout(conn, timeout)
  if (is.null(timeout)) NULL else Sys.time() + timeout
}

# Seconds left before `deadline` (at least a millisecond, so an expired
# deadline still cancels the command it submits); NULL for no deadline.
time_left <- function(deadline) {
  if (is.null(deadline)) return(NULL)
  max(0.001, as.numeric(difftime(deadline, Sys.time(), units = "secs")))
}

# A unique name without touching the user's random number stream.
unique_id <- function() {
  the$unique_counter <- (the$unique_counter %||% 0) + 1
  seed <- serialize(list(Sys.time(), Sys.getpid(), the$unique_counter), NULL)
  substr(unwrap(rust_sha256(seed)), 1L, 24L)
}

# Requests running user code carry this session's random number state; the
# state the code leaves comes back (see with_client_seed() in the dispatcher).
with_seed <- function(req, sync = TRUE) {
  req$sync_seed <- sync
  if (isTRUE(sync)) req$seed <- get0(".Random.seed", envir = globalenv(), inherits = FALSE)
  req
}

# Replay what happened remotely, in order: output printed, messages and
# warnings re-signalled here. Then the value, or the remote error raised.
deliver_answer <- function(ans, call = rlang::caller_env()) {
  if (!is.null(ans$seed)) assign(".Random.seed", ans$seed, envir = globalenv())
  if (identical(ans$status, "missing_packages")) {
    report_versions(ans$versions, call = call)
  }
  replay_events(ans$events)
  if (length(ans$versions)) report_versions(ans$versions, call = call)
  if (identical(ans$status, "error")) {
    err <- ans$error
    tb <- err$traceback %||% character()
    abort_dbrxr(paste0("R error on the cluster: ", err$message), "dbrxr_remote_error",
                problems = if (!is.null(err$call)) paste("In", err$call),
                hints = if (length(tb)) paste0("Remote traceback: ", paste(tb, collapse = " -> ")),
                remote_message = err$message, remote_call = err$call,
                remote_traceback = tb, remote_class = err$class, call = call)
  }
  if (!identical(ans$status, "ok")) {
    abort_dbrxr(sprintf("The cluster answered '%s'.", format(ans$status)),
                "dbrxr_internal_error", call = call)
  }
  ans$value
}

replay_events <- function(events) {
  for (ev in events) {
    switch(ev$type,
      output = cat(ev$text),
      message = rlang::inform(sub("\n$", "", ev$text), class = "dbrxr_remote_message"),
      warning = {
        msg <- ev$text
        if (!is.null(ev$call)) msg <- paste0("(on the cluster, in ", ev$call, ") ", msg)
        rlang::warn(msg, class = "dbrxr_remote_warning", remote_message = ev$text,
                    remote_call = ev$call)
      })
  }
}

# Send a request about a cached object (`hash`); the object's bytes go along
# only when the cluster does not have it yet (first use, or a lost context).
remote_object_request <- function(conn, req, object_bytes, timeout = NULL,
                                  call = rlang::caller_env()) {
  st <- remote_state(conn)
  deadline <- request_deadline(conn, timeout)
  known <- isTRUE(st$objects[[req$hash]])
  if (!known) req$object <- object_bytes()
  ans <- remote_request(conn, req, timeout = time_left(deadline), call = call)
  if (identical(ans$status, "need_object")) {
    req$object <- object_bytes()
    ans <- remote_request(conn, req, timeout = time_left(deadline), call = call)
  }
  if (identical(ans$status, "ok") || identical(ans$status, "error")) {
    assign(req$hash, TRUE, envir = st$objects)
  }
  ans
}
