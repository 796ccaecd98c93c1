# remote_library(): R libraries on the cluster that persist, built once per
# manifest under <staging>/libraries/<hash>/ and used by every later request
# of the connection (and the Spark executors, through $path). The cluster does
# the work (inst/remote/dispatcher.R, "R libraries"): resolve the manifest and
# say whether a complete library with its hash exists (one round trip when it
# does); else fetch the sources, install the packages one request each (so
# their output shows as they finish), and commit the build atomically.

#' An R library on the cluster, built once per manifest
#'
#' Resolves the packages you name (with their recursive hard dependencies:
#' `Depends`, `Imports`, `LinkingTo`) on the cluster into a manifest of exact
#' versions and sources, hashes it together with the cluster's R version and
#' platform, and makes the library `<staging>/libraries/<hash>/`, a DBFS or
#' Volume path that the driver and every executor see. When a complete
#' library with that hash exists, nothing is installed: the call is one round
#' trip. Otherwise the packages are installed on the driver's disk, the result
#' is moved into place atomically and a marker is written last; two sessions
#' building the same hash at once end with one library and no error.
#'
#' The connection remembers its library: every later request (scoring,
#' [remote_eval()], [remote_function()], ...) puts it first on `.libPaths()`
#' on the cluster, and Spark executors do the same. It survives restarts of
#' the cluster: the next `remote_library()` call with the same manifest finds
#' it by hash.
#'
#' Packages the cluster's runtime already has at a suitable version are used
#' from there when they are only dependencies (their `source` is `"system"`);
#' the packages you name, and those a lockfile pins to another version than
#' the runtime's, are installed into the library. Older versions are taken
#' from the repository's `src/contrib/Archive/`, as CRAN keeps them.
#'
#' @param packages Names of packages to install from `repos`.
#' @param lockfile Path of an renv lockfile (`renv.lock`): every package it
#'   lists is installed at its exact version, from its `Repositories` (plus
#'   `repos` when given). Packages from other sources (GitHub, ...) need their
#'   source tarball in `local`.
#' @param local Paths of package source tarballs (`pkg_1.0.0.tar.gz`, as
#'   `R CMD build` makes them) or source directories (built here with
#'   `R CMD build`), e.g. of your own package or internal packages in no
#'   repository. They are uploaded once, under their content hash. A package
#'   that depends on dbrxr (`Imports`, `Depends`, `LinkingTo`) gets a
#'   cluster-side dbrxr from this session, not from a repository.
#' @param repos Repositories the cluster installs from (as for
#'   `install.packages()`; `"@CRAN@"` is `https://cloud.r-project.org`). A
#'   `file://` repository must be a path the cluster can read.
#' @param conn A `dbx_connection`.
#' @param rebuild Build the library again even when a complete one exists
#'   (it then replaces it).
#' @param progress Show what is being installed, and the installation output,
#'   as it happens. `NULL`: the connection's `progress` option, else while
#'   interactive.
#' @param timeout Seconds for the whole call; a build still running then is
#'   stopped and discarded, and the error is a `dbrxr_timeout_error`. `NULL`:
#'   no limit.
#' @return A `dbx_library` (invisibly when nothing had to be installed):
#'   `hash`, `path` (the cluster's path of the library), `packages` (a data
#'   frame: `package`, `version`, `source`), `built` (when it was built),
#'   `installed` (what this call installed), `won` (`TRUE` when this call's
#'   build was moved into place, `FALSE` when another session's build of the
#'   same hash got there first and is used, `NA` when nothing was built),
#'   `r_version`, `platform` and `seconds` (how long the call took). A package that cannot be installed
#'   is a `dbrxr_remote_error` (field `package`, and `log`, its installation
#'   output); no library is left behind, so the next call builds again.
#'   Packages whose version here differs from the library's give one
#'   `dbrxr_version_warning` listing them.
#' @seealso [remote_packages()] to compare local and remote versions,
#'   [remote_install_packages()] to add packages to the connection's library.
#' @export
#' @examples
#' \donttest{
#' conn <- local_cluster()
#' # A small package of your own, as a source directory (a tarball works too).
#' src <- file.path(tempfile(), "hello")
#' dir.create(file.path(src, "R"), recursive = TRUE)
#' writeLines(c("Package: hello", "Version: 1.0.0", "Title: Hello",
#'              "Description: Says hello.", "License: MIT",
#'              "Authors@R: person('A', 'B', role = c('aut', 'cre'), email = 'a@b.c')"),
#'            file.path(src, "DESCRIPTION"))
#' writeLines("export(hello)", file.path(src, "NAMESPACE"))
#' writeLines("hello <- function() 'hello from the library'", file.path(src, "R", "hello.R"))
#'
#' env <- remote_library(local = src, conn = conn)
#' env
#' remote_eval(utils::packageVersion("hello"), conn)
#' env <- remote_library(local = src, conn = conn)  # the same sources: reused
#' env$installed
#' dbx_disconnect(conn)
#' }
remote_library <- function(packages = NULL, lockfile = NULL, local = NULL,
                           repos = getOption("repos"), conn = dbx_default_connection(),
                           rebuild = FALSE, progress = NULL, timeout = NULL) {
  call <- rlang::current_env()
  spec <- library_spec(packages, lockfile, local, repos, repos_given = !missing(repos),
                       call = call)
  check_flag(rebuild, null_ok = FALSE, call = call)
  check_flag(progress, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  library_ensure(conn, spec, rebuild = rebuild, progress = progress, timeout = timeout,
                 call = call)
}

#' @export
format.dbx_library <- function(x, ...) {
  p <- x$packages
  src <- ifelse(startsWith(p$source, "local:"), "local", p$source)
  c(sprintf("<dbx_library> %s", x$hash),
    sprintf("  path:     %s", x$path),
    sprintf("  built:    %s%s", x$built,
            if (length(x$installed)) sprintf(" (installed %d now)", length(x$installed)) else ""),
    sprintf("  R:        %s, %s", x$r_version, x$platform),
    sprintf("  packages: %d", nrow(p)),
    if (nrow(p)) sprintf("    %-*s %-*s %s", max(nchar(p$package)), p$package,
                         max(nchar(p$version)), p$version, src))
}

#' @export
print.dbx_library <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

# The library the connection uses (NULL: none).
connection_library <- function(conn) remote_state(conn)$library

# The hint of dbrxr_missing_package_error: the exact call that adds `pkgs`.
missing_package_hint <- function(pkgs) {
  quoted <- paste0("\"", pkgs, "\"", collapse = ", ")
  if (length(pkgs) > 1) quoted <- paste0("c(", quoted, ")")
  sprintf(paste("Build an R library with %s on the cluster: `remote_library(%s, conn = conn)`,",
                "or add %s to the connection's library with `remote_install_packages(%s, conn = conn)`."),
          if (length(pkgs) > 1) "them" else "it", quoted,
          if (length(pkgs) > 1) "them" else "it", quoted)
}

# ---- the spec: what the user asked for, checked here before any network call

# list(packages, pins (named versions), local (list of package, version, deps,
# file), repos). Local tarballs are read here (their DESCRIPTION) and
# uploaded later, in library_ensure().
library_spec <- function(packages, lockfile, local, repos, repos_given = TRUE,
                         call = rlang::caller_env()) {
  if (!is.null(packages) && (!is.character(packages) || anyNA(packages) ||
                             !all(grepl("^[A-Za-z][A-Za-z0-9.]*$", packages)))) {
    abort_dbrxr("`packages` must be a character vector of package names.", "dbrxr_input_error",
                problems = if (is.character(packages)) {
                  sprintf("Not a package name: %s.", paste0("\"", utils::head(
                    packages[is.na(packages) | !grepl("^[A-Za-z][A-Za-z0-9.]*$", packages)], 3),
                    "\"", collapse = ", "))
                } else sprintf("It is %s.", obj_type(packages)),
                hints = "Give package source tarballs as `local`.", call = call)
  }
  check_text(lockfile, call = call)
  if (!is.null(local) && (!is.character(local) || anyNA(local))) {
    abort_dbrxr("`local` must be a character vector of paths of package source tarballs.",
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(local)), call = call)
  }
  if (!length(packages) && is.null(lockfile) && !length(local)) {
    abort_dbrxr("Nothing to put in the library.", "dbrxr_input_error",
                hints = "Give package names (`packages`), an renv lockfile (`lockfile`) or source tarballs (`local`).",
                call = call)
  }
  repos <- check_repos(repos, call = call)
  pins <- character()
  if (!is.null(lockfile)) {
    lock <- read_lockfile(lockfile, call = call)
    pins <- lock$pins
    repos <- unique(c(if (repos_given || !length(lock$repos)) repos, lock$repos))
  }
  locals <- lapply(local %||% character(), function(path) {
    local_tarball(if (dir.exists(path)) build_source_package(path, call = call) else path,
                  call = call)
  })
  names(locals) <- vapply(locals, function(l) l$package, "")
  locals <- with_dbrxr_shim(locals)
  unpinnable <- setdiff(lock_unsupported(lockfile), names(locals))
  if (length(unpinnable)) {
    abort_dbrxr(sprintf("The lockfile has packages from sources dbrxr cannot install from: %s.",
                        paste(unpinnable, collapse = ", ")), "dbrxr_input_error",
                hints = "Build their source tarballs (`R CMD build`) and pass them as `local`.",
                package = unpinnable, call = call)
  }
  pins <- pins[!names(pins) %in% names(locals)]
  list(packages = unique(as.character(packages)), pins = pins, local = locals, repos = repos)
}

check_repos <- function(repos, call = rlang::caller_env()) {
  if (!is.character(repos) || anyNA(repos) || !all(nzchar(repos))) {
    abort_dbrxr("`repos` must be a character vector of repository URLs.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(repos)), call = call)
  }
  repos[repos == "@CRAN@"] <- "https://cloud.r-project.org"
  unique(unname(sub("/+$", "", repos)))
}

# An renv lockfile: the versions it pins (packages from repositories) and its
# repositories. Packages from other sources are listed by lock_unsupported().
read_lockfile <- function(path, call = rlang::caller_env()) {
  lock <- parse_lockfile(path, call = call)
  pkgs <- lock$Packages %||% list()
  from_repo <- vapply(pkgs, function(p) lockfile_from_repo(p), logical(1))
  pkgs <- pkgs[from_repo]
  pins <- vapply(pkgs, function(p) as.character(p$Version %||% NA), "")
  names(pins) <- vapply(names(pkgs), function(n) as.character(pkgs[[n]]$Package %||% n), "")
  bad <- names(pins)[is.na(pins) | !nzchar(pins)]
  if (length(bad)) {
    abort_dbrxr("The lockfile has packages without a version.", "dbrxr_input_error",
                problems = paste("Packages:", paste(bad, collapse = ", ")), call = call)
  }
  repos <- vapply(lock$R$Repositories %||% list(), function(r) as.character(r$URL %||% NA), "")
  repos <- repos[!is.na(repos)]
  list(pins = pins[!names(pins) %in% base_packages],
       repos = if (length(repos)) check_repos(repos, call = call) else character())
}

parse_lockfile <- function(path, call = rlang::caller_env()) {
  if (!file.exists(path) || dir.exists(path)) {
    abort_dbrxr(sprintf("The lockfile `%s` does not exist.", path), "dbrxr_input_error",
                hints = "Give the path of an renv lockfile (renv.lock).", call = call)
  }
  if (!requireNamespace("jsonlite", quietly = TRUE)) {
    abort_dbrxr("Reading a lockfile needs the jsonlite package.", "dbrxr_input_error",
                hints = "Install it with `install.packages(\"jsonlite\")`.", call = call)
  }
  lock <- tryCatch(jsonlite::read_json(path), error = function(e) e)
  if (inherits(lock, "error") || !is.list(lock) || !is.list(lock$Packages %||% list())) {
    abort_dbrxr(sprintf("`%s` is not an renv lockfile.", path), "dbrxr_input_error",
                problems = if (inherits(lock, "error")) conditionMessage(lock)
                           else "It has no `Packages` object.",
                call = call)
  }
  lock
}

lockfile_from_repo <- function(p) {
  src <- as.character(p$Source %||% "Repository")
  src %in% c("Repository", "CRAN")
}

lock_unsupported <- function(lockfile) {
  if (is.null(lockfile)) return(character())
  pkgs <- parse_lockfile(lockfile)$Packages %||% list()
  keep <- !vapply(pkgs, lockfile_from_repo, logical(1))
  setdiff(vapply(names(pkgs)[keep], function(n) as.character(pkgs[[n]]$Package %||% n), ""),
          base_packages)
}

# A local source tarball: its package, version and dependencies, from the
# DESCRIPTION inside.
local_tarball <- function(path, call = rlang::caller_env()) {
  if (!file.exists(path) || dir.exists(path)) {
    abort_dbrxr(sprintf("The package tarball `%s` does not exist.", path), "dbrxr_input_error",
                hints = "Give paths of source tarballs as `R CMD build` makes them (pkg_1.0.0.tar.gz).",
                call = call)
  }
  not_pkg <- function(problem) {
    abort_dbrxr(sprintf("`%s` is not an R package source tarball.", path), "dbrxr_input_error",
                problems = problem,
                hints = "Build one with `R CMD build <package directory>`.", call = call)
  }
  files <- tryCatch(utils::untar(path, list = TRUE, tar = "internal"), error = function(e) e,
                    warning = function(w) w)
  if (inherits(files, "condition")) not_pkg(conditionMessage(files))
  desc <- grep("^[^/]+/DESCRIPTION$", files, value = TRUE)
  if (length(desc) != 1L) not_pkg("It has no <package>/DESCRIPTION file.")
  exdir <- tempfile("dbrxr-desc-")
  on.exit(unlink(exdir, recursive = TRUE))
  utils::untar(path, files = desc, exdir = exdir, tar = "internal")
  d <- read.dcf(file.path(exdir, desc))
  if (!all(c("Package", "Version") %in% colnames(d))) not_pkg("Its DESCRIPTION has no Package or Version.")
  fields <- intersect(c("Depends", "Imports", "LinkingTo"), colnames(d))
  list(package = unname(d[1, "Package"]), version = unname(d[1, "Version"]),
       deps = unname(d[1, fields]), file = normalizePath(path))
}

# A package source directory, built with `R CMD build` (no vignettes, no
# manual) into a temporary directory: the path of the tarball.
build_source_package <- function(dir, call = rlang::caller_env()) {
  if (!file.exists(file.path(dir, "DESCRIPTION"))) {
    abort_dbrxr(sprintf("`%s` is not an R package source directory.", dir), "dbrxr_input_error",
                problems = "It has no DESCRIPTION file.",
                hints = "Give the directory of a package (with DESCRIPTION) or a source tarball.",
                call = call)
  }
  src <- normalizePath(dir)
  out <- tempfile("dbrxr-build-")
  dir.create(out)
  old <- setwd(out)
  on.exit(setwd(old))
  log <- suppressWarnings(system2(file.path(R.home("bin"), "R"),
                                  c("CMD", "build", "--no-build-vignettes", "--no-manual",
                                    shQuote(src)),
                                  stdout = TRUE, stderr = TRUE))
  tarball <- list.files(out, pattern = "[.]tar[.]gz$", full.names = TRUE)
  if (!is.null(attr(log, "status")) || length(tarball) != 1L) {
    abort_dbrxr(sprintf("`R CMD build` of `%s` failed.", dir), "dbrxr_input_error",
                problems = utils::tail(log[nzchar(trimws(log))], 12),
                hints = "Fix the package so that `R CMD build` succeeds, or pass a tarball.",
                log = log, call = call)
  }
  deterministic_tarball(tarball)
}

# The same tarball for the same sources, whenever built: without the
# `Packaged:` stamp and with fixed file times, so the content hash (hence the
# library's) changes only when the package does.
deterministic_tarball <- function(tarball) {
  exdir <- tempfile("dbrxr-repack-")
  on.exit(unlink(exdir, recursive = TRUE))
  utils::untar(tarball, exdir = exdir, tar = "internal")
  pkg <- list.files(exdir)
  desc_file <- file.path(exdir, pkg, "DESCRIPTION")
  desc <- readLines(desc_file)
  writeLines(desc[!startsWith(desc, "Packaged:")], desc_file)
  files <- list.files(exdir, recursive = TRUE, full.names = TRUE, include.dirs = TRUE, all.files = TRUE)
  Sys.setFileTime(c(files, file.path(exdir, pkg)), as.POSIXct("2020-01-01", tz = "UTC"))
  old <- setwd(exdir)
  on.exit(setwd(old), add = TRUE, after = FALSE)
  out <- normalizePath(tarball)
  unlink(out)
  utils::tar(out, pkg, compression = "gzip", tar = "internal")
  out
}

# Packages that depend on dbrxr get, unless `local` has one, a dbrxr of our
# own on the cluster: a package with dbrxr's version and exports whose
# functions only say that they run in the R session, not on the cluster (the
# real dbrxr needs its Rust library and a workspace connection, and is no
# repository's). Code shipped to the cluster never calls them.
with_dbrxr_shim <- function(locals) {
  deps <- as.character(unlist(lapply(locals, function(l) l$deps)))
  named <- unlist(strsplit(deps[!is.na(deps)], ","))
  named <- trimws(sub("[ (].*$", "", trimws(named)))
  if (!"dbrxr" %in% named || "dbrxr" %in% names(locals)) return(locals)
  locals$dbrxr <- local_tarball(dbrxr_shim_tarball())
  locals
}

dbrxr_shim_tarball <- local({
  made <- NULL
  function() {
    if (!is.null(made) && file.exists(made)) return(made)
    version <- as.character(utils::packageVersion("dbrxr"))
    exports <- sort(getNamespaceExports("dbrxr"))
    root <- tempfile("dbrxr-shim-")
    src <- file.path(root, "dbrxr")
    dir.create(file.path(src, "R"), recursive = TRUE)
    writeLines(c("Package: dbrxr", paste("Version:", version),
                 "Title: The Cluster Side of 'dbrxr'",
                 "Description: Stands in for dbrxr on a cluster, for packages that import it.",
                 "License: MIT", "Encoding: UTF-8"),
               file.path(src, "DESCRIPTION"))
    writeLines(sprintf("export(`%s`)", exports), file.path(src, "NAMESPACE"))
    writeLines(c("client_only <- function(name) function(...) {",
                 "  stop(sprintf(\"dbrxr::%s() runs in your R session, not on the cluster.\", name),",
                 "       call. = FALSE)",
                 "}",
                 sprintf("`%s` <- client_only(\"%s\")", exports, exports)),
               file.path(src, "R", "shim.R"))
    # A fixed time stamp: the same dbrxr gives the same tarball, hence the
    # same library hash in every session.
    files <- list.files(root, recursive = TRUE, full.names = TRUE, include.dirs = TRUE)
    Sys.setFileTime(c(files, src), as.POSIXct("2020-01-01", tz = "UTC"))
    tarball <- file.path(root, sprintf("dbrxr_%s.tar.gz", version))
    old <- setwd(root)
    on.exit(setwd(old))
    utils::tar(basename(tarball), "dbrxr", compression = "gzip", tar = "internal")
    made <<- tarball
    tarball
  }
})

# ---- building or reusing a library

library_ensure <- function(conn, spec, rebuild = FALSE, progress = NULL, timeout = NULL,
                           call = rlang::caller_env()) {
  started <- Sys.time()
  deadline <- if (!is.null(timeout)) started + timeout
  show <- want_progress(progress %||% conn$options$progress)
  # Local tarballs travel once, under their content hash.
  for (p in names(spec$local)) {
    l <- spec$local[[p]]
    if (is.null(l$path)) {
      staged <- stage_bytes(conn, l$file, "cache", progress = FALSE, call = call)
      l$path <- staged$cluster_path
      l$sha256 <- staged$hash
      spec$local[[p]] <- l
    }
  }
  wire <- spec
  wire$local <- lapply(unname(spec$local), function(l) l[c("package", "version", "deps", "path", "sha256")])
  wire$root <- libraries_root(conn)
  res <- library_call(conn, list(op = "library_resolve", spec = wire), call = call)
  if (!is.null(res$failure)) library_failure(res$failure, call = call)
  installed <- character()
  won <- NA
  if (!isTRUE(res$complete) || rebuild) {
    built <- library_build(conn, res, rebuild = rebuild, show = show, deadline = deadline,
                           call = call)
    res$built <- built$built
    installed <- built$installed
    won <- built$won
  }
  lib <- structure(list(
    hash = res$hash, path = res$path,
    packages = res$packages[c("package", "version", "source")],
    built = res$built, installed = installed, won = won,
    r_version = res$r_version, platform = res$platform,
    seconds = as.numeric(difftime(Sys.time(), started, units = "secs")),
    spec = spec), class = "dbx_library")
  rownames(lib$packages) <- NULL
  st <- remote_state(conn)
  st$library <- lib
  warn_library_versions(lib)
  if (length(installed)) lib else invisible(lib)
}

# Where libraries live, as the cluster sees it: <staging>/libraries.
libraries_root <- function(conn) {
  staging <- unwrap(rust_session_info(conn$handle))$staging
  root <- if (startsWith(staging, "dbfs:")) paste0("/dbfs/", sub("^dbfs:/*", "", staging)) else staging
  paste0(sub("/+$", "", root), "/libraries")
}

# One library request: the dispatcher's value (output, messages and warnings
# replayed here).
library_call <- function(conn, req, call = rlang::caller_env()) {
  deliver_answer(remote_request(conn, c(req, list(packages = character())), call = call),
                 call = call)
}

library_build <- function(conn, res, rebuild, show, deadline, call = rlang::caller_env()) {
  todo <- res$packages[res$packages$source != "system", , drop = FALSE]
  base <- list(hash = res$hash, path = res$path, manifest = res$packages,
               build_id = unique_id())
  say <- function(...) if (show) cli::cli_inform(c(i = cli_escape(paste0(...))), class = "dbrxr_progress")
  say(sprintf("Building R library %s on the cluster: %d package%s to install.", substr(res$hash, 1, 12),
              nrow(todo), if (nrow(todo) == 1) "" else "s"))
  fetched <- library_call(conn, c(list(op = "library_fetch"), base), call = call)
  if (!is.null(fetched$failure)) library_failure(fetched$failure, call = call)
  build <- fetched$build
  done <- FALSE
  on.exit(if (!done) try(library_call(conn, list(op = "library_abort", build = build)),
                         silent = TRUE), add = TRUE)
  installed <- character()
  for (i in seq_along(fetched$order)) {
    p <- fetched$order[i]
    left <- remaining_seconds(deadline)
    if (!is.null(left) && left <= 0) library_timeout(p, call = call)
    version <- res$packages$version[res$packages$package == p]
    say(sprintf("Installing %s %s (%d/%d)", p, version, i, length(fetched$order)))
    out <- library_call(conn, list(op = "library_install", build = build, package = p,
                                   file = fetched$files[i], timeout = left %||% 0), call = call)
    if (show && length(out$log)) cat(out$log, sep = "\n")
    if (isTRUE(out$lost)) {
      abort_dbrxr("The library build lost its directory on the cluster.", "dbrxr_context_error",
                  problems = "The execution context was recreated during the build.",
                  hints = "Call `remote_library()` again.", call = call)
    }
    if (isTRUE(out$timed_out)) library_timeout(p, call = call)
    if (!isTRUE(out$ok)) {
      tail <- utils::tail(out$log[nzchar(trimws(out$log))], 12)
      abort_dbrxr(sprintf("Installing %s %s on the cluster failed; the library was not built.",
                          p, version), "dbrxr_remote_error",
                  problems = c(sprintf("R CMD INSTALL exited with status %s. Last lines of its output:",
                                       format(out$status)), tail),
                  hints = c("Fix the package (or its system requirements on the cluster), then call `remote_library()` again.",
                            "The whole output is in the error's `log` field."),
                  package = p, log = out$log, remote_message = paste(tail, collapse = "\n"),
                  call = call)
    }
    installed <- c(installed, p)
  }
  committed <- library_call(conn, c(list(op = "library_commit", build = build, replace = rebuild),
                                    base), call = call)
  done <- TRUE
  say(sprintf("R library %s is ready%s.", substr(res$hash, 1, 12),
              if (isTRUE(committed$won)) "" else " (another session finished the same library first; using it)"))
  list(built = committed$built, installed = installed, won = committed$won)
}

remaining_seconds <- function(deadline) {
  if (is.null(deadline)) return(NULL)
  as.numeric(difftime(deadline, Sys.time(), units = "secs"))
}

library_timeout <- function(package, call = rlang::caller_env()) {
  abort_dbrxr(sprintf("`remote_library()` ran out of time while installing %s; the build was discarded.",
                      package), "dbrxr_timeout_error",
              hints = "Raise `timeout` (seconds), or leave it NULL for no limit.",
              package = package, call = call)
}

# A resolve/fetch failure reported by the cluster: a package it cannot get.
library_failure <- function(f, call = rlang::caller_env()) {
  abort_dbrxr(f$message, "dbrxr_remote_error", hints = f$hints, package = f$package,
              remote_message = f$message, call = call)
}

# One dbrxr_version_warning for every package whose version here differs from
# the library's.
warn_library_versions <- function(lib) {
  p <- lib$packages
  here <- local_versions(p$package)
  differ <- !is.na(here) & !p$package %in% base_packages &
    mapply(function(a, b) is.na(a) || utils::compareVersion(a, b) != 0, here, p$version)
  if (!any(differ)) return(invisible())
  d <- p[differ, ]
  rlang::warn(
    c(sprintf("%d package%s differ%s between this session and the cluster's library; results may differ.",
              nrow(d), if (nrow(d) > 1) "s" else "", if (nrow(d) > 1) "" else "s"),
      stats::setNames(sprintf("%s: %s here, %s in the library", d$package, here[differ], d$version),
                      rep("*", nrow(d)))),
    class = "dbrxr_version_warning", package = d$package,
    local_version = unname(here[differ]), remote_version = d$version)
}
