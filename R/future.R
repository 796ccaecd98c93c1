# A backend for the `future` package whose workers are execution contexts of
# the cluster: plan(dbrxr::databricks, conn = conn, workers = 4). Each worker
# is its own session (same host, credentials and cluster as `conn`) with its
# own context, created lazily and bootstrapped once. A future's expression
# (from future::getExpression(): conditions, output, seeds, globals) is
# evaluated by the dispatcher's "eval" request and its FutureResult comes back
# as serialize() bytes. Nothing here blocks except value() and waiting for a
# free worker.

# ---- Adapter to the remote protocol --------------------------------------
# The only functions of this file that touch the protocol: its async API
# (remote_request_start() / _done() / _finish() / _cancel() in
# remote-protocol.R). Starting never waits: a fresh context is created and
# bootstrapped by the request's own Rust job.
#   fw_start(conn, req, timeout) -> handle   (starts; never waits)
#   fw_done(handle)   -> TRUE/FALSE           (no wait, no HTTP request)
#   fw_finish(handle) -> the dispatcher's answer (waits; Ctrl-C cancels)
#   fw_cancel(handle)                         (stops what is running)

# `call` is NULL (no frame), so that futures, which closures may capture,
# never hold a frame of dbrxr.
fw_start <- function(conn, req, timeout = NULL, call = NULL) {
  remote_request_start(conn, req, timeout = timeout, call = call)
}
fw_done <- function(h) remote_request_done(h)
fw_finish <- function(h) remote_request_finish(h)
fw_cancel <- function(h) remote_request_cancel(h)

# ---- The strategy ----------------------------------------------------------

#' A future backend running on the cluster
#'
#' A strategy for [future::plan()]: each future runs in R on the cluster, on one
#' of `workers` execution contexts, while this R session goes on. Everything
#' built on `future` works with it: [future::future()] and [future::value()],
#' `future.apply::future_lapply()`, `furrr::future_map()`, promises.
#'
#' Each worker is one execution context of the cluster of `conn`, opened as a
#' session of its own (same host, credentials and cluster), created on first
#' use and bootstrapped once; it stays for later futures until `conn` is
#' closed ([dbx_disconnect()] destroys the workers' contexts too). A future
#' started while all workers are busy waits for one to free, as with other
#' backends.
#'
#' The globals and packages of a future are those `future` finds; they travel
#' as R serialize() bytes through dbrxr's remote protocol (staged when
#' large). Output, messages, warnings and errors are relayed as `future`
#' relays them; `future(seed = TRUE)` gives the same random numbers as under
#' `plan(sequential)`. `future` must be installed on the cluster too.
#'
#' A [remote_model()] handle among the globals is the model itself in the
#' worker, so `future(predict(m, chunk))` works: a registered model
#' (`remote_model("models:/...")`) is read from the copy the cluster made when
#' it loaded it from the registry (its bytes never come to this session), any
#' other model is put in each worker's cache once.
#'
#' `resolved()` never waits: it looks at the state of the command, which a
#' background task of dbrxr polls. `value()` waits; Ctrl-C while it waits
#' cancels the command on the cluster. A future whose command fails outside
#' R (its context died, `timeout` ran out: `dbrxr_timeout_error`) gets that
#' error, classed also `FutureError`, from `value()`; its worker is given a
#' new context for the next future.
#'
#' @param ... Arguments passed on by `future` (the expression, `envir`,
#'   `globals`, `seed`, ...).
#' @param conn A `dbx_connection`; its cluster runs the futures.
#' @param workers How many execution contexts run futures at once.
#' @param timeout Seconds each future may run on the cluster before its command
#'   is cancelled and `value()` raises `dbrxr_timeout_error`; `NULL`: no limit.
#' @param envir The environment the future's globals are looked up in.
#' @return A `DatabricksFuture` (a `future::Future`).
#' @seealso `vignette("parallel", package = "dbrxr")`.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' if (requireNamespace("future", quietly = TRUE)) {
#'   conn <- local_cluster()
#'   future::plan(databricks, conn = conn, workers = 2)
#'   f <- future::future(Sys.getpid())
#'   future::resolved(f)
#'   future::value(f)
#'   future::plan(future::sequential)
#'   dbx_disconnect(conn)
#' }
databricks <- function(..., conn = dbx_default_connection(), workers = 4L, timeout = NULL,
                       envir = parent.frame()) {
  call <- rlang::current_env()
  if (!requireNamespace("future", quietly = TRUE)) {
    abort_dbrxr("The future backend needs the package 'future'.", "dbrxr_missing_package_error",
                hints = "Install it with `install.packages(\"future\")`.", package = "future",
                call = call)
  }
  check_connection(conn, call = call)
  check_whole(workers, "workers", min = 1, max = 10000, call = call)
  check_number(timeout, min = 0, call = call)
  f <- DatabricksFuture(..., conn = conn, workers = as.integer(workers), timeout = timeout,
                        envir = envir)
  if (!isTRUE(f$lazy)) f <- future::run(f)
  invisible(f)
}
class(databricks) <- c("databricks", "multiprocess", "future", "function")

DatabricksFuture <- function(expr = NULL, substitute = TRUE, envir = parent.frame(), ...,
                             conn, workers, timeout) {
  if (substitute) expr <- substitute(expr)
  f <- future::MultiprocessFuture(expr = expr, substitute = FALSE, envir = envir, ...)
  f$conn <- conn
  f$workers <- workers
  f$timeout <- timeout
  structure(f, class = c("DatabricksFuture", class(f)))
}

#' @exportS3Method future::run
run.DatabricksFuture <- function(future, ...) {
  if (!identical(future$state, "created")) {
    stop(future::FutureError(sprintf("A future ('%s') can only be launched once.",
                                     future$label %||% "<none>"), future = future))
  }
  req <- fw_request(future)
  pool <- fw_pool(future$conn, future$workers)
  slot <- fw_wait_for_slot(pool, future$workers)
  slot$future <- future
  future$slot <- slot
  future$handle <- tryCatch({
    worker <- fw_worker_conn(pool, slot)
    fw_place_models(worker, req$place, timeout = future$timeout)
    req$place <- NULL
    fw_start(worker, req, timeout = future$timeout)
  },
    error = function(e) {
      fw_release(slot, future, retire = TRUE)
      stop(e)
    })
  future$state <- "running"
  invisible(future)
}

# The eval request of a future: its full expression (future's wrapper does
# output capture, conditions, seed and options), globals as a plain list, and
# the packages the dispatcher checks (versions) and loads before running it.
fw_request <- function(future) {
  # immediateConditions = TRUE: conditions are recorded and muffled there, as
  # in other out-of-process backends, so they reach value() exactly once.
  expr <- local({
    # A stack overflow in the future's code is caught where it happens and
    # raised again from a shallow stack. On the deep stack future's own
    # handlers overflow too while recording it and the error is lost (the
    # value is NULL, as under plan(sequential) with future 1.31).
    user <- future$expr
    on.exit(future$expr <- user)
    future$expr <- bquote(base::tryCatch(.(user), stackOverflowError = function(e) base::stop(e)))
    future::getExpression(future, immediateConditions = TRUE)
  })
  globals <- as.list(unclass(future$globals))
  attr(globals, "where") <- NULL
  # remote_model() handles become the models they stand for in the worker.
  handles <- vapply(globals, inherits, logical(1), "dbx_remote_model")
  handle_pkgs <- unlist(lapply(globals[handles], `[[`, "packages"))
  place <- Filter(function(m) is.null(m$path), globals[handles])
  globals[handles] <- lapply(globals[handles], fw_model_ref)
  info <- check_transportable(globals, "the globals of the future")
  warn_large_globals(globals, "The future", call = NULL)
  # Models among the globals: the packages of their predict() methods, which
  # future does not see (S3 dispatch finds them only once loaded).
  models <- Filter(is.object, globals[!handles])
  packages <- needed_packages("future", future$packages, info$namespaces, handle_pkgs,
                              unlist(lapply(models, predict_method_packages)))
  list(op = "eval", expr = expr, globals = globals, packages = packages, place = place)
}

# What a remote_model() handle among a future's globals travels as (its
# connection cannot): its hash, which the dispatcher turns back into the
# model with its session code. A registered model also names the copy the
# cluster staged when it loaded it from the registry, which a worker reads
# (its bytes never come here); any other model is put in the worker's cache
# first, from here only when the worker does not have it (fw_place_models()).
fw_model_ref <- function(m) {
  ref <- list(hash = m$hash)
  if (!is.null(m$path)) ref$path <- m$path
  structure(ref, class = "dbrxr_model_ref")
}

fw_place_models <- function(conn, handles, timeout) {
  for (m in handles) {
    ans <- remote_object_request(conn, list(op = "put", hash = m$hash, packages = m$packages),
                                 function() model_bytes(m), timeout = timeout)
    deliver_answer(ans)
  }
}

#' @exportS3Method future::resolved
resolved.DatabricksFuture <- function(x, run = TRUE, ...) {
  if (!is.null(x$result)) return(TRUE)
  if (identical(x$state, "created")) {
    # A lazy future starts here only when a worker is free (never waits).
    if (run && fw_free_workers(x$conn, x$workers) > 0) future::run(x)
    return(FALSE)
  }
  fw_done(x$handle)
}

#' @exportS3Method future::result
result.DatabricksFuture <- function(future, ...) {
  if (identical(future$state, "created")) future <- future::run(future)
  fw_collect(future)
  res <- future$result
  if (inherits(res, "FutureError")) stop(res)
  res
}

#' @exportS3Method future::nbrOfFreeWorkers
nbrOfFreeWorkers.databricks <- function(evaluator = NULL, background = FALSE, ...) {
  workers <- future::nbrOfWorkers(evaluator)
  conn <- eval(formals(evaluator)$conn, envir = asNamespace("dbrxr"))
  fw_free_workers(conn, workers)
}

# Wait for the future's answer and keep its FutureResult, or the error of a
# command that failed outside R, on the future; free the worker. Never
# raises (but Ctrl-C: the command is cancelled and the future marked).
fw_collect <- function(future) {
  if (!is.null(future$result)) return(invisible(future))
  slot <- future$slot
  finished <- FALSE
  on.exit(if (!finished) {
    fw_cancel(future$handle)
    fw_release(slot, future, retire = TRUE)
    future$result <- future_error(
      "The future was interrupted; its command on the cluster was cancelled.", future)
    future$state <- "interrupted"
    fw_forget(future)
  })
  ans <- tryCatch(fw_finish(future$handle), error = function(e) e)
  failed <- inherits(ans, "error")
  res <- if (failed) ans else tryCatch(deliver_answer(ans), error = function(e) e)
  if (inherits(res, "FutureResult")) {
    future$result <- res
    future$state <- "finished"
  } else {
    if (!inherits(res, "error")) {
      res <- simpleError(sprintf("The cluster answered a %s instead of a FutureResult.",
                                 class(res)[1]))
    }
    future$result <- as_future_error(res, future)
    future$state <- "failed"
  }
  finished <- TRUE
  # A command that failed outside R may have left its context dead or odd.
  fw_release(slot, future, retire = failed)
  fw_forget(future)
  invisible(future)
}

# A collected future keeps only its result: not the request (globals), nor
# its worker.
fw_forget <- function(future) {
  future$handle <- NULL
  future$slot <- NULL
}

future_error <- function(message, future) {
  future::FutureError(message, future = NULL, uuid = future$uuid)
}

# A dbrxr error that is also a FutureError, so that future, future.apply and
# furrr treat it as an error of the future, while tryCatch(dbrxr_timeout_error
# = ...) still catches it.
as_future_error <- function(e, future) {
  tail <- c("rlang_error", "simpleError", "error", "condition")
  cls <- class(e)
  class(e) <- unique(c(setdiff(cls, tail), "FutureError", "FutureCondition", intersect(cls, tail)))
  attr(e, "uuid") <- future$uuid
  e
}

# ---- The pool of workers ---------------------------------------------------
# One pool per connection, in the package state. A slot is an environment:
#   conn    the worker's own dbx_connection (NULL until first use or after retiring)
#   future  the future it runs, NULL when free

# Status checks of a worker's commands: poll the cluster at least this often,
# so a finished future is noticed within a quarter second.
fw_poll_max <- 0.25

fw_pool <- function(conn, workers) {
  if (is.null(the$fw_pools)) the$fw_pools <- new.env(parent = emptyenv())
  key <- conn$key
  pool <- the$fw_pools[[key]]
  if (is.null(pool) || !identical(pool$conn, conn)) {
    pool <- new.env(parent = emptyenv())
    pool$conn <- conn
    pool$slots <- list()
    assign(key, pool, envir = the$fw_pools)
    fw_register_cleanup()
  }
  while (length(pool$slots) < workers) {
    slot <- new.env(parent = emptyenv())
    slot$conn <- NULL
    slot$future <- NULL
    pool$slots[[length(pool$slots) + 1L]] <- slot
  }
  # Fewer workers than before: idle contexts beyond them are closed.
  for (slot in pool$slots[-seq_len(workers)]) if (is.null(slot$future)) fw_retire(slot)
  pool
}

fw_free_workers <- function(conn, workers) {
  pool <- if (!is.null(the$fw_pools)) the$fw_pools[[conn$key]]
  if (is.null(pool)) return(workers)
  busy <- sum(vapply(pool$slots[seq_len(min(workers, length(pool$slots)))],
                     function(s) !is.null(s$future), logical(1)))
  workers - busy
}

# A free slot among the first `n`, preferring one whose context exists. When
# all are busy, collect finished futures (their results stay on them) until
# one frees, checking every 5 ms at first, then up to every 100 ms.
fw_wait_for_slot <- function(pool, n) {
  delay <- 0.005
  repeat {
    check_connection(pool$conn, "conn")
    slots <- pool$slots[seq_len(n)]
    free <- Filter(function(s) is.null(s$future), slots)
    if (length(free)) {
      warm <- Filter(function(s) !is.null(s$conn), free)
      return(if (length(warm)) warm[[1]] else free[[1]])
    }
    for (s in slots) if (fw_done(s$future$handle)) fw_collect(s$future)
    if (any(vapply(slots, function(s) is.null(s$future), logical(1)))) next
    Sys.sleep(delay)
    delay <- min(delay * 1.5, 0.1)
  }
}

# The worker's connection, opened on first use: a session of its own on the
# same cluster, with the options of `conn` (polling at least every 250 ms).
fw_worker_conn <- function(pool, slot) {
  if (is.null(slot$conn) || isTRUE(slot$conn$closed)) {
    res <- unwrap(rust_connect_clone(pool$conn$handle))
    opts <- pool$conn$options
    opts$poll_max <- min(opts$poll_max, fw_poll_max)
    opts$progress <- FALSE
    slot$conn <- new_connection(res$handle, res$info, options = opts)
  }
  slot$conn
}

fw_release <- function(slot, future, retire = FALSE) {
  if (is.null(slot)) return(invisible())
  if (identical(slot$future, future)) slot$future <- NULL
  if (retire) fw_retire(slot)
  invisible()
}

# Close a worker's connection (its context is destroyed); the next future on
# this slot opens a new one.
fw_retire <- function(slot) {
  if (!is.null(slot$conn)) try(close_connection(slot$conn), silent = TRUE)
  slot$conn <- NULL
  invisible()
}

# plan(sequential) (any change of plan) closes the workers' contexts, as it
# stops multisession's workers. future 1.31 has no cleanup hook for other
# backends: plan() stops the "cluster" of its ClusterRegistry on every change,
# so the pools are registered there as one, whose stopCluster() closes them.
# Registering again is a no-op (same `workers` key).
fw_register_cleanup <- function() {
  registry <- tryCatch(utils::getFromNamespace("ClusterRegistry", "future"),
                       error = function(e) NULL)
  if (!is.function(registry)) return(invisible(FALSE))
  make <- function(workers, ...) structure(list(workers = workers),
                                           class = c("dbrxr_future_workers", "cluster"))
  try(registry("start", workers = "dbrxr-databricks-workers", makeCluster = make), silent = TRUE)
  invisible(TRUE)
}

#' @exportS3Method parallel::stopCluster
stopCluster.dbrxr_future_workers <- function(cl = NULL) {
  fw_pool_close()
}

# Close the workers of `conn` (all of them when NULL), cancelling what they
# run. Closing `conn` (dbx_disconnect(), its finalizer) calls this.
fw_pool_close <- function(conn = NULL) {
  if (is.null(the$fw_pools)) return(invisible())
  keys <- if (is.null(conn)) ls(the$fw_pools) else intersect(conn$key, ls(the$fw_pools))
  for (key in keys) {
    for (slot in the$fw_pools[[key]]$slots) {
      if (!is.null(slot$future$handle)) fw_cancel(slot$future$handle)
      slot$future <- NULL
      fw_retire(slot)
    }
    rm(list = key, envir = the$fw_pools)
  }
  invisible()
}
