# The client side of the remote R protocol. One request is one Python command
# calling the bootstrap module installed in the context (inst/python), which
# hands R serialize() bytes to the dispatcher (inst/remote/dispatcher.R) and hands
# its serialized answer back. Small requests travel inline as base64, larger
# ones are staged; small answers come back inline, larger ones are staged by
# the cluster and fetched. Values never appear in generated source.

protocol_version <- 1L
marker <- "DBRXR1"

# Limits, overridable by options for tests and benchmarks.
# Answers inline up to 30,000 bytes: 40,000 base64 characters stay under the
# 50,000-character text output limit of Databricks runtimes.
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

# Python string literal of arbitrary text: base64 inside quotes, so nothing a
# caller passes can change the meaning of the generated source.
py_b64 <- function(x) {
  if (is.null(x) || length(x) == 0L) return("\"\"")
  if (is.character(x)) {
    if (!nzchar(x)) return("\"\"")
    x <- charToRaw(enc2utf8(x))
  }
  paste0("\"", unwrap(rust_base64_encode(x)), "\"")
}

read_source <- function(dir, file) {
  path <- system.file(dir, file, package = "dbrxr")
  if (!nzchar(path)) {
    abort_dbrxr(sprintf("dbrxr's %s/%s is missing from the installed package.", dir, file),
                "dbrxr_internal_error", hints = "Reinstall dbrxr.")
  }
  readBin(path, "raw", file.size(path))
}

bootstrap_code <- function(install_rpy2) {
  module <- read_source("python", "dbrxr_bootstrap.py")
  dispatcher <- read_source("remote", "dispatcher.R")
  paste0(
    "import sys, types, base64\n",
    "_dbrxr_m = types.ModuleType(\"dbrxr_bootstrap\")\n",
    "exec(compile(base64.b64decode(", py_b64(module), ").decode(\"utf-8\"), ",
    "\"dbrxr_bootstrap.py\", \"exec\"), _dbrxr_m.__dict__)\n",
    "sys.modules[\"dbrxr_bootstrap\"] = _dbrxr_m\n",
    "del _dbrxr_m\n",
    "sys.modules[\"dbrxr_bootstrap\"].setup(", py_b64(dispatcher), ", install_rpy2=",
    if (isTRUE(install_rpy2)) "True" else "False", ")\n")
}

call_code <- function(req_b64, req_path, result_path) {
  paste0(
    "import sys\n",
    "if \"dbrxr_bootstrap\" not in sys.modules:\n",
    "    print(\"", marker, ":NOBOOT\")\n",
    "else:\n",
    "    sys.modules[\"dbrxr_bootstrap\"].call(\"", req_b64, "\", ", py_b64(req_path), ", ",
    py_b64(result_path), ", ", format(inline_answer_max(), scientific = FALSE), ")\n")
}

# The marker line of a command's output: list(kind, payload).
parse_marker <- function(text, call = rlang::caller_env()) {
  text <- paste(text, collapse = "\n")
  lines <- strsplit(text, "\n", fixed = TRUE)[[1]]
  hits <- which(startsWith(lines, paste0(marker, ":")))
  if (!length(hits)) {
    abort_dbrxr("The cluster's answer to a dbrxr command has no dbrxr result in it.",
                "dbrxr_internal_error",
                problems = paste("Output:", substr(text, 1, 500)),
                hints = "The bootstrap module may have been replaced; disconnect and reconnect.",
                call = call)
  }
  line <- lines[hits[length(hits)]]
  body <- substring(line, nchar(marker) + 2L)
  sp <- regexpr(" ", body, fixed = TRUE)
  if (sp < 0) return(list(kind = body, payload = ""))
  list(kind = substr(body, 1L, sp - 1L), payload = substring(body, sp + 1L))
}

# Install the bootstrap module in the connection's context.
remote_bootstrap <- function(conn, timeout = NULL, call = rlang::caller_env()) {
  st <- remote_state(conn)
  out <- run_python(conn, bootstrap_code(conn$options$install_rpy2), timeout = timeout, call = call)
  m <- parse_marker(out, call = call)
  if (identical(m$kind, "NORPY2")) {
    info <- parse_fields(m$payload)
    abort_dbrxr("rpy2 is not available in the cluster's Python, so dbrxr cannot run R there.",
                "dbrxr_context_error",
                problems = c(if (!is.null(info$problem)) paste("Import failed:", info$problem),
                             if (!is.null(info$python)) paste("Python:", info$python)),
                hints = c("Add rpy2 as a cluster library: {\"pypi\": {\"package\": \"rpy2\"}} (Libraries API or the cluster's Libraries tab), then reconnect.",
                          "Or install it from a cluster init script (pip install rpy2).",
                          "Or connect with `install_rpy2 = TRUE` to pip-install it in the execution context."),
                call = call)
  }
  if (!identical(m$kind, "READY")) {
    abort_dbrxr("The dbrxr bootstrap did not complete on the cluster.", "dbrxr_context_error",
                problems = substr(paste(out, collapse = "\n"), 1, 500), call = call)
  }
  st$info <- parse_fields(m$payload)
  st$stats$bootstraps <- st$stats$bootstraps + 1
  # A new context has none of the objects shipped before.
  rm(list = ls(st$objects), envir = st$objects)
  invisible(st$info)
}

# The bootstrap's form-encoded reports (key=value&...) as a named list.
parse_fields <- function(text) {
  if (!nzchar(text)) return(list())
  pairs <- strsplit(strsplit(text, "&", fixed = TRUE)[[1]], "=", fixed = TRUE)
  dec <- function(x) utils::URLdecode(gsub("+", " ", x, fixed = TRUE))
  vals <- lapply(pairs, function(p) if (length(p) > 1) dec(p[[2]]) else "")
  stats::setNames(vals, vapply(pairs, function(p) dec(p[[1]]), character(1)))
}

# Send one request (a list) and return the dispatcher's answer (a list).
# `timeout` (seconds, NULL = the connection's `timeout` option) bounds the
# whole call: the command still running then is cancelled on the cluster and
# a dbrxr_timeout_error raised.
remote_request <- function(conn, req, timeout = NULL, call = rlang::caller_env()) {
  deadline <- request_deadline(conn, timeout)
  if (is.null(remote_state(conn)$info)) {
    remote_bootstrap(conn, timeout = time_left(deadline), call = call)
  }
  p <- request_begin(conn, req, deadline = deadline, call = call)
  request_submit(conn, p)
  request_finish(conn, p)
}

# A request in flight is an environment: its bytes, the upload of them when
# they are too large to go inline (a Rust job, running while R does other
# work), the staged path, and the command's job. Splitting begin / submit /
# finish lets chunked scoring upload chunk j+1 while chunk j is scored.
request_begin <- function(conn, req, deadline = NULL, call = rlang::caller_env()) {
  req$protocol <- protocol_version
  req$libpaths <- remote_state(conn)$library$path  # the connection's remote_library(), first
  p <- new.env(parent = emptyenv())
  p$deadline <- deadline
  p$bytes <- serialize(req, NULL, xdr = FALSE)
  p$call <- call
  if (length(p$bytes) > inline_request_max()) {
    p$upload <- stage_start(conn, p$bytes, "session", call = call)
  }
  p
}

request_code <- function(conn, p) {
  if (length(p$bytes) <= inline_request_max()) {
    return(call_code(unwrap(rust_base64_encode(p$bytes)), NULL, result_path(conn)))
  }
  if (!is.null(p$upload)) {
    job <- p$upload
    p$upload <- NULL
    p$staged <- run_job(job, FALSE, call = p$call)$path
  }
  if (is.null(p$staged)) p$staged <- stage_bytes(conn, p$bytes, call = p$call)$path
  call_code("", p$staged, result_path(conn))
}

request_submit <- function(conn, p) {
  p$job <- exec_start(conn, request_code(conn, p), timeout = time_left(p$deadline), call = p$call)
  invisible(p)
}

# Wait for the command and return the answer. A context recreated behind our
# back (NOBOOT) is bootstrapped again and the request re-sent once; a staged
# request file that vanished (NOFILE) is staged again and re-sent once.
request_finish <- function(conn, p) {
  call <- p$call
  st <- remote_state(conn)
  on.exit(request_cleanup(conn, p), add = TRUE)
  job <- p$job
  p$job <- NULL
  m <- parse_marker(exec_output(run_job(job, FALSE, call = call)), call = call)
  if (identical(m$kind, "NOBOOT")) {
    remote_bootstrap(conn, timeout = time_left(p$deadline), call = call)
    m <- parse_marker(run_python(conn, request_code(conn, p), timeout = time_left(p$deadline),
                                 call = call), call = call)
  } else if (identical(m$kind, "NOFILE")) {
    p$staged <- NULL
    m <- parse_marker(run_python(conn, request_code(conn, p), timeout = time_left(p$deadline),
                                 call = call), call = call)
  }
  st$stats$requests <- st$stats$requests + 1
  st$stats$bytes_sent <- st$stats$bytes_sent + length(p$bytes)
  answer <- switch(m$kind,
    INLINE = unwrap(rust_base64_decode(m$payload), call = call),
    FILE = {
      path <- parse_fields(m$payload)$path
      on.exit(stage_remove_quiet(conn, path), add = TRUE)
      stage_fetch(conn, path, progress = FALSE, call = call)
    },
    abort_dbrxr("The cluster gave an unexpected dbrxr answer.", "dbrxr_internal_error",
                problems = paste0(m$kind, " ", substr(m$payload, 1, 300)), call = call))
  st$stats$bytes_received <- st$stats$bytes_received + length(answer)
  unserialize(answer)
}

# Stop an upload or command still running (an error or interrupt got here
# first) and remove the staged request.
request_cleanup <- function(conn, p) {
  if (!is.null(p$upload)) try(rust_job_cancel(p$upload), silent = TRUE)
  if (!is.null(p$job)) try(rust_job_cancel(p$job), silent = TRUE)
  if (!is.null(p$staged)) stage_remove_quiet(conn, p$staged)
  p$upload <- p$job <- p$staged <- NULL
}

exec_output <- function(res) if (is.null(res$data)) "" else as.character(res$data)

# Run Python in the connection's context; its text output.
run_python <- function(conn, code, timeout = NULL, call = rlang::caller_env()) {
  exec_output(exec_command(conn, code, timeout = timeout, call = call))
}

# When a call with `timeout` seconds (else the connection's `timeout` option)
# must end; NULL for no limit.
request_deadline <- function(conn, timeout = NULL) {
  timeout <- timeout %||% conn$options$timeout
  if (is.null(timeout)) NULL else Sys.time() + timeout
}

# Seconds left before `deadline` (at least a millisecond, so an expired
# deadline still cancels the command it submits); NULL for no deadline.
time_left <- function(deadline) {
  if (is.null(deadline)) return(NULL)
  max(0.001, as.numeric(difftime(deadline, Sys.time(), units = "secs")))
}

# A fresh path in the session's staging directory for an answer the cluster
# writes (removed after it is fetched, or with the session).
result_path <- function(conn) {
  info <- unwrap(rust_session_info(conn$handle))
  paste0(sub("/+$", "", info$staging), "/sessions/", info$session_id,
         "/result-", unique_id(), ".bin")
}

# A unique name without touching the user's random number stream.
unique_id <- function() {
  the$unique_counter <- (the$unique_counter %||% 0) + 1
  seed <- serialize(list(Sys.time(), Sys.getpid(), the$unique_counter), NULL)
  substr(unwrap(rust_sha256(seed)), 1L, 24L)
}

stage_remove_quiet <- function(conn, path) {
  tryCatch(stage_remove(conn, path), error = function(e) invisible(FALSE),
           interrupt = function(e) invisible(FALSE))
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
