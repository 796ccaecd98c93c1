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
  ans <- handle(req_raw)
  # A value R cannot serialize (e.g. nested deeper than the C stack allows)
  # is an error answer, not a lost context.
  tryCatch(serialize(ans, NULL, xdr = FALSE), error = function(e) {
    serialize(answer_error(paste("The value could not be sent back:", conditionMessage(e)),
                           "serialize()"), NULL, xdr = FALSE)
  })
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
  use_library(req$libpaths)
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
    library_resolve = run_captured(function() library_resolve(req$spec), character()),
    library_fetch = run_captured(function() library_fetch(req), character()),
    library_install = list(status = "ok", value = library_install(req)),
    library_commit = run_captured(function() library_commit(req), character()),
    library_abort = list(status = "ok", value = unlink(req$build, recursive = TRUE) == 0L),
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
# Remembered per library path set (a library put first by use_library() changes it).
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
  model <- unbundle(model)
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
    if (inherits(val, "dbrxr_model_ref")) val <- model_from_ref(val)
    if (is.function(val) && identical(environment(val), globalenv())) {
      environment(val) <- env
    }
    assign(nm, val, envir = env)
  }
  env
}

# The model a remote_model() handle stands for (a future's global): from
# this context's cache (the client put it there), else from the copy staged
# when the cluster loaded it from the registry. Its session code (a logged
# model's predict() method) is defined, as for op_score.
model_from_ref <- function(ref) {
  obj <- get0(ref$hash, envir = cache, inherits = FALSE)
  if (is.null(obj)) {
    path <- if (!is.null(ref$path)) fs_path(ref$path)
    if (is.null(path) || !file.exists(path)) {
      stop("The model of a remote_model() handle is not on this worker any more; run the future again, or call remote_model() again first.",
           call. = FALSE)
    }
    obj <- unserialize(readBin(path, "raw", file.size(path)))
    assign(ref$hash, obj, envir = cache)
  }
  unbundle(obj)
}

# A shipped model itself: a dbrxr_model_bundle's session code is defined
# first (see define_session()).
unbundle <- function(obj) {
  if (!inherits(obj, "dbrxr_model_bundle")) return(obj)
  define_session(obj$session)
  obj$model
}

# A shipped function bundle: list(f, globals). Prepared once, cached.
prepare_function <- function(bundle) {
  env <- globals_env(bundle$globals)
  f <- bundle$f
  if (identical(environment(f), globalenv())) environment(f) <- env
  list(f = f, name = bundle$name %||% "f", session = bundle$session)
}

# Installed packages, the first of each name in .libPaths() order (the one
# library() loads); in_library: it comes from the connection's dbrxr library.
installed_table <- function() {
  ip <- utils::installed.packages(fields = character())
  ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
  lib <- unname(ip[, "LibPath"])
  data.frame(package = unname(ip[, "Package"]), version = unname(ip[, "Version"]),
             libpath = lib, in_library = lib %in% library_state$current,
             stringsAsFactors = FALSE)
}

# ---- R libraries (remote_library()) ------------------------------------------
# A library is the directory <staging>/libraries/<hash>/ holding the packages
# of one manifest (R/remote-library.R is the client). It is built on this
# driver's local disk (R CMD INSTALL on a FUSE mount is slow and fragile),
# copied next to its final place, renamed into it, and only then gets its
# marker: a library with a marker is complete. Two sessions building the same
# hash race on the rename; the loser throws its copy away and uses the winner's.

library_marker <- ".dbrxr-complete"

# The runtime's own libraries: what .libPaths() is before a dbrxr library goes
# first (a library left there by an earlier load of this file is not one).
system_libpaths <- Filter(function(p) !file.exists(file.path(p, library_marker)), .libPaths())
library_state <- new.env(parent = emptyenv())

# Where /dbfs and /Volumes are in this process: themselves (the mounts of a
# cluster, and of the local cluster's processes). The bootstrap sets them from
# dbrxr_platform.file_path() when it loads this file.
fs_roots <- c("/dbfs" = "/dbfs", "/Volumes" = "/Volumes")

# The file of a DBFS or Volume path in this process: dbfs:/x is /dbfs/x.
fs_path <- function(path) {
  if (startsWith(path, "dbfs:/")) path <- paste0("/dbfs/", sub("^dbfs:/+", "", path))
  for (top in names(fs_roots)) {
    if (path == top || startsWith(path, paste0(top, "/"))) {
      return(paste0(fs_roots[[top]], substring(path, nchar(top) + 1L)))
    }
  }
  path
}

# Put the connection's library (its cluster path; NULL: none) first on
# .libPaths(), in place of the one used before, whose packages are unloaded so
# the new library's versions are the ones that run.
use_library <- function(path) {
  new <- if (!is.null(path)) normalizePath(fs_path(path), "/", mustWork = FALSE)
  if (identical(new, library_state$current) &&
      (is.null(new) || identical(.libPaths()[1], new))) {
    return(invisible())
  }
  old <- library_state$current
  if (!is.null(old) && !identical(old, new)) unload_from(old)
  .libPaths(c(new, setdiff(.libPaths(), c(old, new))))
  library_state$current <- if (!is.null(new) && identical(.libPaths()[1], new)) new
}

# Unload the namespaces loaded from library `lib`, dependents first (a
# namespace another one imports cannot go before it).
unload_from <- function(lib) {
  loaded_from <- function() {
    Filter(function(ns) {
      path <- tryCatch(getNamespaceInfo(ns, "path"), error = function(e) "")
      startsWith(normalizePath(path, "/", mustWork = FALSE), paste0(lib, "/"))
    }, loadedNamespaces())
  }
  repeat {
    left <- loaded_from()
    gone <- vapply(left, function(ns) {
      !inherits(try(unloadNamespace(ns), silent = TRUE), "try-error")
    }, logical(1))
    if (!length(left) || !any(gone)) break
  }
}

# Dependencies named in DESCRIPTION fields (Depends, Imports, LinkingTo) as a
# data frame: name, op (NA: any version), version.
parse_deps <- function(fields) {
  x <- unlist(strsplit(as.character(fields[!is.na(fields)]), ",", fixed = TRUE))
  x <- trimws(gsub("[[:space:]]+", " ", x))
  x <- x[nzchar(x)]
  pattern <- "^([A-Za-z0-9.]+) ?(\\(([<>=!]+) ?([^)]+)\\))?.*$"
  has <- grepl("(", x, fixed = TRUE)
  data.frame(name = sub(pattern, "\\1", x),
             op = ifelse(has, sub(pattern, "\\3", x), NA_character_),
             version = ifelse(has, trimws(sub(pattern, "\\4", x)), NA_character_),
             stringsAsFactors = FALSE)
}

satisfies <- function(have, op, want) {
  if (is.na(op)) return(TRUE)
  f <- match.fun(op)
  isTRUE(f(package_version(have), package_version(want)))
}

dep_fields <- c("Depends", "Imports", "LinkingTo")

# Resolve a library spec (from the client) into its manifest: every package
# with its version and source ("repository", "local:<sha256>", "system"), the
# hash of that manifest with this R's version and platform, and whether a
# complete library with that hash exists. Requested packages come from `local`
# tarballs, else the repositories at the pinned (lockfile) or newest version;
# dependencies the runtime already has at a suitable version are used from
# there ("system"), others come from the repositories.
library_resolve <- function(spec) {
  base <- rownames(utils::installed.packages(lib.loc = .Library, priority = "base"))
  sys <- utils::installed.packages(lib.loc = system_libpaths, fields = character())
  sys <- sys[!duplicated(sys[, "Package"]), , drop = FALSE]
  sys_version <- stats::setNames(sys[, "Version"], sys[, "Package"])
  local <- list()
  for (l in spec$local) local[[l$package]] <- l
  pins <- spec$pins %||% character()
  requested <- unique(c(spec$packages, names(pins), names(local)))
  ap <- NULL
  available <- function() {
    if (is.null(ap)) ap <<- available_sources(spec$repos)
    ap
  }
  fail <- function(message, package, hints = character()) {
    list(failure = list(message = message, package = package, hints = hints))
  }
  from_repo <- function(p, version = NULL) {
    a <- available()
    row <- which(a[, "Package"] == p)[1]
    if (!is.na(row) && (is.null(version) || identical(a[row, "Version"], version))) {
      file <- if ("File" %in% colnames(a) && !is.na(a[row, "File"])) a[row, "File"]
              else sprintf("%s_%s.tar.gz", p, a[row, "Version"])
      return(list(package = p, version = unname(a[row, "Version"]), source = "repository",
                  url = paste0(a[row, "Repository"], "/", file),
                  deps = unname(a[row, intersect(dep_fields, colnames(a))])))
    }
    if (is.null(version)) return(NULL)
    # An older version: CRAN-like repositories keep them in src/contrib/Archive.
    for (r in sub("/+$", "", spec$repos)) {
      url <- sprintf("%s/src/contrib/Archive/%s/%s_%s.tar.gz", r, p, p, version)
      if (startsWith(url, "file:") && !file.exists(sub("^file://", "", url))) next
      return(list(package = p, version = version, source = "repository", url = url,
                  deps = NA_character_))
    }
    NULL
  }
  choose <- function(p, force_repo) {
    if (!is.null(local[[p]])) {
      l <- local[[p]]
      return(list(package = p, version = l$version, source = paste0("local:", l$sha256),
                  url = l$path, deps = l$deps))
    }
    pin <- pins[p]
    if (!is.na(pin)) {
      if (identical(unname(sys_version[p]), unname(pin))) {
        return(list(package = p, version = unname(pin), source = "system", url = NA_character_,
                    deps = NA_character_))
      }
      e <- from_repo(p, unname(pin))
      if (is.null(e) && length(attr(available(), "unreachable"))) {
        return(unreachable_failure(attr(available(), "unreachable"), p))
      }
      if (is.null(e)) {
        return(fail(sprintf("Package %s %s is in none of the repositories.", p, pin), p,
                    c(paste("Repositories:", paste(spec$repos, collapse = ", ")),
                      "Add the repository that has it to `repos` (or the lockfile), or pass its source tarball as `local`.")))
      }
      return(e)
    }
    in_sys <- !is.na(sys_version[p])
    if (in_sys && !p %in% requested && !p %in% force_repo) {
      return(list(package = p, version = unname(sys_version[p]), source = "system",
                  url = NA_character_, deps = NA_character_))
    }
    e <- from_repo(p)
    if (is.null(e) && in_sys && !p %in% force_repo) {
      return(list(package = p, version = unname(sys_version[p]), source = "system",
                  url = NA_character_, deps = NA_character_))
    }
    if (is.null(e) && length(attr(available(), "unreachable"))) {
      return(unreachable_failure(attr(available(), "unreachable"), p))
    }
    if (is.null(e)) {
      return(fail(sprintf("Package %s is in none of the repositories and not installed on the cluster.", p), p,
                  c(paste("Repositories:", if (length(spec$repos)) paste(spec$repos, collapse = ", ") else "none"),
                    "Check the name and `repos` (the cluster must reach them), or pass the package's source tarball as `local`.")))
    }
    e
  }
  force_repo <- character()
  repeat {
    chosen <- list()
    wants <- list()
    queue <- requested
    while (length(queue)) {
      p <- queue[1]
      queue <- queue[-1]
      if (p %in% names(chosen) || p %in% base || identical(p, "R")) next
      e <- choose(p, force_repo)
      if (!is.null(e$failure)) return(e)
      chosen[[p]] <- e
      d <- parse_deps(e$deps)
      if (nrow(d)) {
        d$parent <- p
        wants[[p]] <- d
        queue <- c(queue, d$name)
      }
    }
    wants <- do.call(rbind, c(list(data.frame(name = character(), op = character(),
                                              version = character(), parent = character())),
                              unname(wants)))
    again <- FALSE
    for (i in seq_len(nrow(wants))) {
      w <- wants[i, ]
      if (is.na(w$op) || w$name %in% base) next
      have <- if (identical(w$name, "R")) paste(R.version$major, R.version$minor, sep = ".")
              else chosen[[w$name]]$version
      if (satisfies(have, w$op, w$version)) next
      if (!identical(w$name, "R") && identical(chosen[[w$name]]$source, "system") &&
          !w$name %in% force_repo && !w$name %in% names(pins)) {
        force_repo <- c(force_repo, w$name)
        again <- TRUE
        next
      }
      return(fail(sprintf("%s needs %s (%s %s), but %s %s is what %s.", w$parent, w$name, w$op,
                          w$version, w$name, have,
                          if (identical(w$name, "R")) "the cluster runs"
                          else if (identical(chosen[[w$name]]$source, "system")) "the cluster has"
                          else "the manifest gives"),
                  w$parent, "Pin compatible versions (or update the lockfile), or use another repository snapshot."))
    }
    if (!again) break
  }
  chosen <- chosen[order(names(chosen))]
  manifest <- data.frame(
    package = names(chosen),
    version = vapply(chosen, function(e) e$version, ""),
    source = vapply(chosen, function(e) e$source, ""),
    url = vapply(chosen, function(e) as.character(e$url), ""),
    stringsAsFactors = FALSE, row.names = NULL)
  hash <- manifest_hash(manifest)
  path <- paste0(sub("/+$", "", spec$root), "/", hash)
  marker <- file.path(fs_path(path), library_marker)
  complete <- file.exists(marker)
  list(hash = hash, path = path, packages = manifest, complete = complete,
       built = if (complete) library_built(marker),
       r_version = R.version.string, platform = R.version$platform)
}

# A package not found while some repository could not be read: say so (the
# package may well be there), not that the package does not exist.
unreachable_failure <- function(unreachable, package) {
  list(failure = list(
    message = sprintf("The cluster could not reach the repositor%s %s, so %s could not be resolved.",
                      if (length(unreachable) > 1) "ies" else "y",
                      paste(names(unreachable), collapse = ", "), package),
    package = package,
    hints = c(sprintf("%s: %s", names(unreachable), unreachable),
              paste("Check the cluster's network access to the repository. A cluster without",
                    "internet access (such as dbrxr's local cluster) needs `repos` pointed at a",
                    "`file://` repository (a directory with src/contrib/PACKAGES), or the",
                    "package's source directory or tarball passed as `local =`."))))
}

# The source packages of `repos`, the newest version of each. A repository
# that cannot be read is a warning, not the end of the resolution; it is kept
# in the "unreachable" attribute (named by URL: the reason).
available_sources <- function(repos) {
  fields <- c("Package", "Version", "Repository", "File", dep_fields)
  unreachable <- character()
  parts <- lapply(repos, function(r) {
    why <- NULL
    a <- tryCatch(withCallingHandlers(utils::available.packages(repos = r, type = "source"),
                                      warning = function(w) {
                                        why <<- conditionMessage(w)
                                        invokeRestart("muffleWarning")
                                      }),
                  error = function(e) {
      why <<- conditionMessage(e)
      NULL
    })
    if (is.null(a) || (!nrow(a) && !is.null(why))) {
      unreachable[[r]] <<- why %||% "no PACKAGES index"
      warning(sprintf("Repository %s could not be read: %s", r, unreachable[[r]]), call. = FALSE)
      return(NULL)
    }
    if (!nrow(a)) return(NULL)
    missing <- setdiff(fields, colnames(a))
    a <- cbind(a, matrix(NA_character_, nrow(a), length(missing), dimnames = list(NULL, missing)))
    a[, fields, drop = FALSE]
  })
  a <- do.call(rbind, c(list(matrix(character(), 0, length(fields),
                                    dimnames = list(NULL, fields))), parts))
  if (anyDuplicated(a[, "Package"])) {
    best <- vapply(split(seq_len(nrow(a)), a[, "Package"]), function(i) {
      i[order(numeric_version(a[i, "Version"]), decreasing = TRUE)[1]]
    }, integer(1))
    a <- a[sort(best), , drop = FALSE]
  }
  attr(a, "unreachable") <- unreachable
  a
}

# The manifest's identity: packages, versions and sources, this R and platform.
manifest_hash <- function(manifest) {
  text <- c("dbrxr-library 1", R.version.string, R.version$platform,
            sprintf("%s %s %s", manifest$package, manifest$version, manifest$source))
  f <- tempfile("dbrxr-manifest-")
  on.exit(unlink(f))
  writeLines(text, f, useBytes = TRUE)
  unname(tools::md5sum(f))
}

library_built <- function(marker) {
  built <- tryCatch(read.dcf(marker, fields = "Built")[1, 1], error = function(e) NA)
  if (is.na(built)) format(file.mtime(marker), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC") else built
}

# Start a build: a directory on this driver's disk with the sources of every
# package to install (downloaded, or the staged local tarballs), checked against
# the manifest; answers the install order (dependencies first).
library_fetch <- function(req) {
  m <- req$manifest
  todo <- m[m$source != "system", , drop = FALSE]
  build <- file.path(tempdir(), paste0("dbrxr-library-", req$hash, "-", req$build_id))
  for (d in c("lib", "src", "logs")) dir.create(file.path(build, d), recursive = TRUE)
  base <- rownames(utils::installed.packages(lib.loc = .Library, priority = "base"))
  deps <- list()
  for (i in seq_len(nrow(todo))) {
    p <- todo$package[i]
    dest <- file.path(build, "src", sprintf("%s_%s.tar.gz", p, todo$version[i]))
    ok <- if (startsWith(todo$source[i], "local:")) {
      file.copy(fs_path(todo$url[i]), dest)
    } else {
      tryCatch(utils::download.file(todo$url[i], dest, quiet = TRUE, mode = "wb") == 0L,
               error = function(e) FALSE, warning = function(w) FALSE)
    }
    if (!isTRUE(ok) || !file.exists(dest)) {
      unlink(build, recursive = TRUE)
      return(list(failure = list(
        message = sprintf("Could not get the source of %s %s.", p, todo$version[i]), package = p,
        hints = c(paste("From:", todo$url[i]),
                  "Check that the cluster reaches the repository and that it has this version."))))
    }
    desc <- tarball_description(dest, p)
    if (is.null(desc) || !identical(unname(desc[, "Version"]), todo$version[i])) {
      unlink(build, recursive = TRUE)
      return(list(failure = list(
        message = sprintf("The source of %s is not version %s of that package.", p, todo$version[i]),
        package = p, hints = paste("From:", todo$url[i]))))
    }
    d <- parse_deps(desc[1, intersect(dep_fields, colnames(desc))])$name
    deps[[p]] <- intersect(d, todo$package)
    lacking <- setdiff(d, c(m$package, base, "R"))
    if (length(lacking)) {
      unlink(build, recursive = TRUE)
      return(list(failure = list(
        message = sprintf("%s %s needs %s, which the manifest lacks.", p, todo$version[i],
                          paste(lacking, collapse = ", ")),
        package = p, hints = "Add them to the lockfile or to `packages`.")))
    }
  }
  # Dependencies first (a package's own dependencies are in `deps`).
  order <- character()
  while (length(order) < length(deps)) {
    ready <- names(deps)[!names(deps) %in% order &
                         vapply(deps, function(d) all(d %in% order), logical(1))]
    if (!length(ready)) {
      unlink(build, recursive = TRUE)
      return(list(failure = list(message = "The manifest has a dependency cycle.",
                                 package = setdiff(names(deps), order), hints = character())))
    }
    order <- c(order, ready)
  }
  list(build = build, order = order,
       files = file.path(build, "src", sprintf("%s_%s.tar.gz", order,
                                               todo$version[match(order, todo$package)])))
}

tarball_description <- function(tarball, package) {
  exdir <- tempfile("dbrxr-desc-")
  on.exit(unlink(exdir, recursive = TRUE))
  ok <- tryCatch(utils::untar(tarball, files = paste0(package, "/DESCRIPTION"), exdir = exdir,
                              tar = "internal") == 0L,
                 error = function(e) FALSE, warning = function(w) FALSE)
  f <- file.path(exdir, package, "DESCRIPTION")
  if (!isTRUE(ok) || !file.exists(f)) return(NULL)
  read.dcf(f)
}

# Install one package of a build with R CMD INSTALL (a child process: its
# output goes to a log file, returned whole). `timeout` seconds (0: none).
library_install <- function(req) {
  lib <- file.path(req$build, "lib")
  if (!dir.exists(lib)) {
    return(list(ok = FALSE, lost = TRUE, log = character()))
  }
  log <- file.path(req$build, "logs", paste0(req$package, ".log"))
  libs <- paste(c(lib, system_libpaths), collapse = .Platform$path.sep)
  started <- proc.time()[["elapsed"]]
  rc <- suppressWarnings(system2(
    file.path(R.home("bin"), "R"),
    c("CMD", "INSTALL", "--no-multiarch", paste0("--library=", shQuote(lib)), shQuote(req$file)),
    stdout = log, stderr = log, env = paste0("R_LIBS=", shQuote(libs)),
    timeout = max(0, req$timeout %||% 0)))
  out <- if (file.exists(log)) readLines(log, warn = FALSE) else character()
  ok <- identical(as.integer(rc), 0L) &&
    file.exists(file.path(lib, req$package, "DESCRIPTION"))
  if (!ok) unlink(file.path(lib, req$package), recursive = TRUE)
  list(ok = ok, status = as.integer(rc), timed_out = identical(as.integer(rc), 124L),
       log = out, seconds = proc.time()[["elapsed"]] - started)
}

# Move a finished build into <root>/<hash>: copy it beside the final place,
# rename it there (atomic on one file system), then write the marker. When
# another session's rename won, wait for its marker and use its library.
library_commit <- function(req) {
  final <- fs_path(req$path)
  root <- dirname(final)
  dir.create(root, recursive = TRUE, showWarnings = FALSE)
  on.exit(unlink(req$build, recursive = TRUE), add = TRUE)
  remove_stale(root)
  tmp <- file.path(root, paste0(".tmp-", req$hash, "-", req$build_id))
  on.exit(unlink(tmp, recursive = TRUE), add = TRUE)
  dir.create(tmp)
  pkgs <- list.files(file.path(req$build, "lib"), full.names = TRUE)
  if (!all(file.copy(pkgs, tmp, recursive = TRUE))) {
    stop("could not copy the built library to ", root)
  }
  saveRDS(req$manifest, file.path(tmp, ".dbrxr-manifest.rds"))
  marker <- file.path(final, library_marker)
  if (isTRUE(req$replace) && dir.exists(final)) {
    old <- file.path(root, paste0(".old-", req$hash, "-", req$build_id))
    if (file.rename(final, old)) on.exit(unlink(old, recursive = TRUE), add = TRUE)
  }
  won <- suppressWarnings(file.rename(tmp, final))
  if (!won) {
    waited <- wait_for(marker, 120)
    if (!waited && dir.exists(final)) {
      # A library without a marker for that long was left by a build that died
      # between its rename and its marker: put ours in its place.
      stale <- file.path(root, paste0(".stale-", req$hash, "-", req$build_id))
      if (suppressWarnings(file.rename(final, stale))) unlink(stale, recursive = TRUE)
      won <- suppressWarnings(file.rename(tmp, final))
    }
    if (!won && !file.exists(marker)) stop("could not move the built library to ", final)
  }
  if (won) {
    part <- paste0(marker, ".part")
    write.dcf(data.frame(Hash = req$hash, Built = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC"),
                         R = R.version.string, Platform = R.version$platform),
              part)
    if (!file.rename(part, marker)) stop("could not write the library's marker ", marker)
  }
  list(won = won, built = library_built(marker))
}

wait_for <- function(file, seconds) {
  deadline <- Sys.time() + seconds
  while (!file.exists(file)) {
    if (Sys.time() > deadline) return(FALSE)
    Sys.sleep(0.2)
  }
  TRUE
}

# Leftovers of builds that died (temporary copies, replaced libraries) after
# six hours; never a library itself.
remove_stale <- function(root) {
  old <- list.files(root, pattern = "^\\.(tmp|old|stale)-", all.files = TRUE, full.names = TRUE)
  age <- difftime(Sys.time(), file.mtime(old), units = "hours")
  unlink(old[!is.na(age) & age > 6], recursive = TRUE)
}

# Run `thunk`, capturing printed output, messages and warnings in order, and
# the error with its call and the calls leading to it. Output goes to a file
# and is read back in bulk at each message or warning and at the end: time
# linear in its size (a textConnection grows its character vector by one
# element per line, so 100,000 lines took 50 s). At most output_max() bytes
# come back; the rest is dropped and the answer says how much.
run_captured <- function(thunk, versions, req = NULL) {
  set_client_seed(req)
  events <- list()
  path <- tempfile("dbrxr-output-")
  con <- file(path, open = "w")
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
    unlink(path)
  }
  on.exit(restore())
  taken <- 0  # bytes of the file already turned into events
  kept <- 0   # bytes returned (at most `limit`)
  limit <- output_max()
  flush_output <- function() {
    flush(con)
    size <- file.size(path)
    if (is.na(size) || size <= taken) return()
    want <- min(size - taken, max(0, limit - kept))
    if (want > 0) {
      rc <- file(path, open = "rb")
      seek(rc, taken)
      text <- rawToChar(readBin(rc, "raw", want))
      close(rc)
      if (isTRUE(l10n_info()[["UTF-8"]])) Encoding(text) <- "UTF-8"
      events[[length(events) + 1L]] <<- list(type = "output", text = text)
      kept <<- kept + want
    }
    taken <<- size
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
  if (taken > kept) {
    events[[length(events) + 1L]] <- list(type = "output", text = sprintf(
      "\n[dbrxr: %.0f more bytes of output not shown: the limit is %.0f bytes]\n",
      taken - kept, limit))
  }
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

# The most printed output one request returns (bytes): 16 MB, or the
# cluster R session's option `dbrxr.output_max`.
output_max <- function() {
  v <- getOption("dbrxr.output_max")
  if (is.numeric(v) && length(v) == 1L && !is.na(v) && v >= 0) v else 16 * 1024^2
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
