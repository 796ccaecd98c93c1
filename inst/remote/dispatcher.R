# dbrxr's R dispatcher. The bootstrap module evaluates this file in a private
# environment of the cluster's embedded R. Requests and answers are R
# serialize() bytes of plain lists; see R/remote-protocol.R for the client.
#
# Answer: list(status, value, error, events, versions, info)
#   status   "ok" | "error" | "missing_packages" | "need_object"
#   events   output, messages and warnings in the order they happened
#   versions remote versions of the packages the request needs (NA = missing)

dbrxr_protocol <- 1L

# Objects (models, functions) already shipped, unserialized, keyed by hash.
cache <- new.env(parent = emptyenv())

dbrxr_info <- function() {
  list(r_version = R.version.string, platform = R.version$platform,
       protocol = dbrxr_protocol, pid = Sys.getpid(), libpaths = .libPaths())
}

dispatch_raw <- function(req_raw) {
  serialize(handle(req_raw), NULL, xdr = FALSE)
}

dispatch_file <- function(path) {
  dispatch_raw(readBin(path, "raw", file.size(path)))
}

handle <- function(req_raw) {
  req <- tryCatch(unserialize(req_raw), error = function(e) e)
  if (inherits(req, "error")) {
    return(answer_error(conditionMessage(req), "unserialize(request)"))
  }
  if (!identical(req$protocol, dbrxr_protocol)) {
    return(answer_error(sprintf("dbrxr protocol mismatch: client %s, cluster %s.",
                                format(req$protocol), dbrxr_protocol), "dispatch"))
  }
  versions <- package_versions(req$packages)
  if (anyNA(versions)) {
    return(list(status = "missing_packages", versions = versions))
  }
  switch(req$op,
    ping = list(status = "ok", value = dbrxr_info(), versions = versions),
    put = op_put(req, versions),
    score = with_client_seed(req, op_score(req, versions)),
    eval = with_client_seed(req, op_eval(req, versions)),
    call = with_client_seed(req, op_call(req, versions)),
    forget = { rm(list = intersect(req$hashes, ls(cache)), envir = cache)
               list(status = "ok", value = ls(cache)) },
    packages = list(status = "ok", value = installed_table()),
    install = op_install(req),
    answer_error(sprintf("Unknown dbrxr operation '%s'.", format(req$op)), "dispatch"))
}

# User code runs from the client's random number state (none: a fresh one, as
# in a new session), and the state it leaves goes back to the client, so
# set.seed(1); remote_eval(runif(1)) equals set.seed(1); runif(1), and ties
# broken at random in predict() (ranger, randomForest) are broken the same way.
# sync_seed: TRUE = start from req$seed; "keep" = continue from the state the
# previous request left (later chunks of one remote_score()).
with_client_seed <- function(req, answer) {
  if (is.null(req$sync_seed) || !answer$status %in% c("ok", "error")) return(answer)
  answer$seed <- get0(".Random.seed", envir = globalenv(), inherits = FALSE)
  answer
}

set_client_seed <- function(req) {
  if (!isTRUE(req$sync_seed)) return()
  if (is.null(req$seed)) {
    if (exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
      rm(".Random.seed", envir = globalenv())
    }
  } else {
    assign(".Random.seed", req$seed, envir = globalenv())
  }
  # Load it into R's generator now: C code may draw without reading it first.
  RNGkind()
  invisible()
}

answer_error <- function(message, call = NULL, traceback = character()) {
  list(status = "error",
       error = list(message = message, call = call, traceback = traceback),
       events = list())
}

# Remote versions of `pkgs` as a named character vector, NA when not installed.
# Remembered per library path set; op_install forgets them.
version_cache <- new.env(parent = emptyenv())
package_versions <- function(pkgs) {
  pkgs <- unique(as.character(pkgs))
  key <- paste(.libPaths(), collapse = "\n")
  if (!identical(version_cache$.key, key)) {
    rm(list = ls(version_cache, all.names = TRUE), envir = version_cache)
    version_cache$.key <- key
  }
  v <- vapply(pkgs, function(p) {
    known <- version_cache[[p]]
    if (!is.null(known)) return(known)
    ver <- tryCatch(as.character(utils::packageVersion(p)), error = function(e) NA_character_)
    if (!is.na(ver)) assign(p, ver, envir = version_cache)
    ver
  }, character(1))
  stats::setNames(v, pkgs)
}

load_packages <- function(pkgs) {
  for (p in pkgs) loadNamespace(p)
}

# Cached object for `hash`, from the request's bytes when it carries them.
cached_object <- function(hash, bytes, prepare = identity) {
  if (exists(hash, envir = cache, inherits = FALSE)) return(get(hash, envir = cache))
  if (is.null(bytes)) return(NULL)
  obj <- prepare(unserialize(bytes))
  assign(hash, obj, envir = cache)
  obj
}

need_object <- function(hash, versions) {
  list(status = "need_object", hash = hash, versions = versions)
}

# Call `fun` on `args` through symbols bound in a fresh environment, so calls in
# tracebacks read `predict(model, newdata, type = .arg1)`, never deparsed data.
call_bound <- function(name, fun, args, env = new.env(parent = globalenv())) {
  assign(name, fun, envir = env)
  syms <- lapply(seq_along(args), function(i) as.name(paste0(".arg", i)))
  for (i in seq_along(args)) assign(paste0(".arg", i), args[[i]], envir = env)
  nms <- names(args)
  if (!is.null(nms)) names(syms) <- nms
  eval(as.call(c(as.name(name), syms)), env)
}

op_put <- function(req, versions) {
  load_packages(req$packages)
  if (is.null(cached_object(req$hash, req$object))) return(need_object(req$hash, versions))
  list(status = "ok", value = NULL, versions = versions)
}

op_score <- function(req, versions) {
  load_packages(req$packages)
  model <- cached_object(req$hash, req$object)
  if (is.null(model)) return(need_object(req$hash, versions))
  if (inherits(model, "dbrxr_model_bundle")) {
    define_session(model$session)
    model <- model$model
  }
  env <- new.env(parent = globalenv())
  env$model <- model
  env$newdata <- req$newdata
  call <- as.call(c(quote(predict), quote(model), quote(newdata),
                    lapply(seq_along(req$args), function(i) as.name(paste0(".arg", i)))))
  if (length(req$args)) {
    names(call) <- c("", "", "", names(req$args) %||% rep("", length(req$args)))
    for (i in seq_along(req$args)) assign(paste0(".arg", i), req$args[[i]], envir = env)
  }
  run_captured(function() eval(call, env), versions, req)
}

op_eval <- function(req, versions) {
  load_packages(req$packages)
  define_session(req$session)
  env <- globals_env(req$globals)
  run_captured(function() eval(req$expr, env), versions, req)
}

op_call <- function(req, versions) {
  load_packages(req$packages)
  fn <- cached_object(req$hash, req$object, prepare_function)
  if (is.null(fn)) return(need_object(req$hash, versions))
  define_session(fn$session)
  run_captured(function() call_bound(fn$name, fn$f, req$args), versions, req)
}

# Session code shipped with a model, expression or function (the client's own
# S3 methods and the functions its formulas call, with their globals): defined
# in the global environment, where S3 dispatch and model.frame() (evaluating
# in a formula's environment, the client's global one) find them. Defined
# again before every use, so two models whose session code shares a name each
# run with their own.
define_session <- function(values) {
  for (nm in names(values)) assign(nm, values[[nm]], envir = globalenv())
}

# An environment holding shipped globals. Closures that lived in the client's
# global environment arrive pointing at this R's global environment, where the
# other globals are not: re-home them into the new environment.
globals_env <- function(globals) {
  env <- new.env(parent = globalenv())
  for (nm in names(globals)) {
    val <- globals[[nm]]
    if (is.function(val) && identical(environment(val), globalenv())) {
      environment(val) <- env
    }
    assign(nm, val, envir = env)
  }
  env
}

# A shipped function bundle: list(f, globals). Prepared once, cached.
prepare_function <- function(bundle) {
  env <- globals_env(bundle$globals)
  f <- bundle$f
  if (identical(environment(f), globalenv())) environment(f) <- env
  list(f = f, name = bundle$name %||% "f", session = bundle$session)
}

op_install <- function(req) {
  rm(list = ls(version_cache, all.names = TRUE), envir = version_cache)
  lib <- req$lib
  if (is.null(lib)) lib <- .libPaths()[1]
  dir.create(lib, recursive = TRUE, showWarnings = FALSE)
  if (!lib %in% .libPaths()) .libPaths(c(lib, .libPaths()))
  # R CMD INSTALL runs as a child process whose output no sink() sees: keep
  # it in files and print them, so the client shows it.
  outdir <- tempfile("dbrxr-install-")
  dir.create(outdir)
  on.exit(unlink(outdir, recursive = TRUE), add = TRUE)
  args <- list(pkgs = req$pkgs, lib = lib, repos = req$repos, keep_outputs = outdir)
  if (!is.null(req$type)) args$type <- req$type
  run_captured(function() {
    call_bound("install.packages", utils::install.packages, args)
    for (f in list.files(outdir, full.names = TRUE)) cat(readLines(f), sep = "\n")
    vapply(req$pkgs, function(p) {
      tryCatch(as.character(utils::packageVersion(p, lib.loc = lib)),
               error = function(e) NA_character_)
    }, character(1))
  }, character())
}

installed_table <- function() {
  ip <- utils::installed.packages(fields = character())
  data.frame(package = unname(ip[, "Package"]), version = unname(ip[, "Version"]),
             libpath = unname(ip[, "LibPath"]), stringsAsFactors = FALSE)
}

# Run `thunk`, capturing printed output, messages and warnings in order, and
# the error with its call and the calls leading to it.
run_captured <- function(thunk, versions, req = NULL) {
  set_client_seed(req)
  events <- list()
  con <- textConnection(NULL, "w")
  sink(con)
  sink(con, type = "message")
  # Also on interrupt (a cancelled command): never leave the sinks behind.
  restored <- FALSE
  restore <- function() {
    if (restored) return()
    restored <<- TRUE
    sink(type = "message")
    sink()
    close(con)
  }
  on.exit(restore())
  taken <- 0L
  flush_output <- function() {
    out <- textConnectionValue(con)
    if (length(out) > taken) {
      text <- paste0(paste(out[(taken + 1L):length(out)], collapse = "\n"), "\n")
      events[[length(events) + 1L]] <<- list(type = "output", text = text)
      taken <<- length(out)
    }
  }
  trace <- NULL
  result <- tryCatch(
    withCallingHandlers(
      list(value = thunk()),
      warning = function(w) {
        flush_output()
        events[[length(events) + 1L]] <<- list(type = "warning", text = conditionMessage(w),
                                                call = deparse_call(conditionCall(w)))
        invokeRestart("muffleWarning")
      },
      message = function(m) {
        flush_output()
        events[[length(events) + 1L]] <<- list(type = "message", text = conditionMessage(m))
        invokeRestart("muffleMessage")
      },
      error = function(e) {
        trace <<- user_calls(sys.calls())
      }),
    error = function(e) list(error = e))
  flush_output()
  restore()
  if (!is.null(result$error)) {
    e <- result$error
    return(list(status = "error", events = events, versions = versions,
                error = list(message = conditionMessage(e),
                             call = deparse_call(conditionCall(e)),
                             class = class(e),
                             traceback = trace %||% character())))
  }
  list(status = "ok", value = result$value, events = events, versions = versions)
}

# A condition's call as text; NULL for the dispatcher's own calls (a warning
# or error raised at the top level of the user's expression has the
# dispatcher's eval() as its call, which means nothing to the user).
deparse_call <- function(call) {
  if (is.null(call)) return(NULL)
  text <- paste(deparse(call, nlines = 3L), collapse = "\n")
  if (grepl(internal_call_pattern, text)) return(NULL)
  text
}

internal_call_pattern <- "^(eval\\((call|req\\$expr|as\\.call)|call_bound\\(|thunk\\(|run_captured\\(|withCallingHandlers\\(|tryCatch)"

# The calls of the user's code: drop the dispatcher's own frames around it.
user_calls <- function(calls) {
  text <- vapply(calls, function(cl) paste(deparse(cl, nlines = 1L), collapse = ""),
                 character(1))
  start <- max(c(0L, grep("^thunk\\(\\)$", text)))
  text <- text[seq_along(text) > start]
  # The dispatcher's own eval()s on top, the condition machinery at the bottom.
  while (length(text) && grepl(internal_call_pattern, text[1])) {
    text <- text[-1]
  }
  text[!grepl("^(\\.handleSimpleError|h\\(simpleError)", text)]
}

`%||%` <- function(x, y) if (is.null(x)) y else x
