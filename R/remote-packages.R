# The cluster's R packages: list them next to this session's, add more to the
# connection's library.

#' Compare the cluster's R packages with this session's, and add packages
#'
#' `remote_packages()` lists the R packages the cluster's R session loads (the
#' connection's [remote_library()] first, then the runtime's own libraries)
#' next to the versions installed here, plus the packages loaded here that the
#' cluster lacks.
#'
#' `remote_install_packages()` adds packages to the connection's library: it
#' is [remote_library()] with the current manifest extended by `pkgs`, so what
#' it installs persists (under its hash, across cluster restarts) and reaches
#' the executors.
#'
#' @param conn A `dbx_connection`.
#' @param packages `NULL` (all packages), or the names of the packages to
#'   compare (a name on neither side is listed as missing on the cluster).
#' @param pkgs Names of packages to install from `repos`, or paths of package
#'   source tarballs (`.tar.gz`).
#' @param repos Repositories the cluster installs from, as in
#'   [remote_library()].
#' @param progress,timeout As in [remote_library()].
#' @return `remote_packages()`: a data frame with one row per package and the
#'   columns `package`, `local_version` (`NA`: not installed here),
#'   `remote_version` (`NA`: not on the cluster), `where` (the hash of the
#'   connection's library, or `"system"` for the runtime's libraries, `NA`
#'   when missing) and `status` (`"same"`, `"different"`, `"only remote"` or
#'   `"missing remote"`, for a package loaded here that the cluster lacks).
#'   Printing it shows a summary of the statuses, then only the packages that
#'   differ or are missing on the cluster (`as.data.frame()` prints all).
#'   `remote_install_packages()`: the new `dbx_library`, invisibly.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' pk <- remote_packages(conn)
#' head(pk)
#' remote_packages(conn, packages = c("stats", "utils"))
#' dbx_disconnect(conn)
remote_packages <- function(conn = dbx_default_connection(), packages = NULL) {
  call <- rlang::current_env()
  check_chars(packages, call = call)
  check_connection(conn)
  ans <- remote_request(conn, list(op = "packages", packages = character()), call = call)
  remote <- deliver_answer(ans, call = call)
  lib <- connection_library(conn)
  where <- ifelse(remote$in_library %in% TRUE, lib$hash %||% "library", "system")
  if (!is.null(packages)) {
    keep <- remote$package %in% packages
    remote <- lapply(remote, function(col) col[keep])
    where <- where[keep]
  }
  missing <- setdiff(packages %||% loadedNamespaces(), remote$package)
  pkgs <- c(remote$package, missing)
  here <- installed_versions(pkgs)
  there <- c(remote$version, rep(NA_character_, length(missing)))
  status <- ifelse(is.na(there), "missing remote",
                   ifelse(is.na(here), "only remote",
                          ifelse(same_version(here, there), "same", "different")))
  out <- data.frame(package = pkgs, local_version = unname(here), remote_version = there,
                    where = c(where, rep(NA_character_, length(missing))), status = status,
                    stringsAsFactors = FALSE)
  out <- out[order(tolower(out$package)), ]
  rownames(out) <- NULL
  class(out) <- c("dbx_packages", "data.frame")
  out
}

#' @export
print.dbx_packages <- function(x, ...) {
  counts <- table(factor(x$status, c("same", "different", "only remote", "missing remote")))
  cat(sprintf("<dbx_packages> %d package%s: %s\n", nrow(x), if (nrow(x) == 1L) "" else "s",
              paste(counts, names(counts), collapse = ", ")))
  diff <- x[x$status %in% c("different", "missing remote"), , drop = FALSE]
  if (nrow(diff)) {
    rownames(diff) <- NULL
    print(as.data.frame(diff), ...)
  } else {
    cat("No package differs from this session's or is missing on the cluster.\n")
  }
  invisible(x)
}

same_version <- function(a, b) {
  mapply(function(x, y) !is.na(x) && !is.na(y) && utils::compareVersion(x, y) == 0, a, b,
         USE.NAMES = FALSE)
}

# Versions installed here (the first of each name in .libPaths()), NA when not.
installed_versions <- function(pkgs) {
  ip <- utils::installed.packages(fields = character())
  ip <- ip[!duplicated(ip[, "Package"]), , drop = FALSE]
  stats::setNames(unname(ip[, "Version"][match(pkgs, ip[, "Package"])]), pkgs)
}

#' @rdname remote_packages
#' @export
remote_install_packages <- function(pkgs, conn = dbx_default_connection(),
                                    repos = getOption("repos"), progress = NULL, timeout = NULL) {
  call <- rlang::current_env()
  check_not_connection(pkgs, call = call)
  if (!is.character(pkgs) || !length(pkgs) || anyNA(pkgs) || !all(nzchar(pkgs))) {
    abort_dbrxr("`pkgs` must be a character vector of package names or tarball paths.",
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(pkgs)), call = call)
  }
  tarball <- grepl("\\.tar\\.gz$", pkgs)
  spec <- library_spec(pkgs[!tarball], NULL, pkgs[tarball], repos, call = call)
  check_flag(progress, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  current <- connection_library(conn)$spec
  if (!is.null(current)) {
    # What is named now replaces what the manifest had for that package.
    new <- c(spec$packages, names(spec$local))
    spec$packages <- unique(c(current$packages, spec$packages))
    spec$pins <- current$pins[!names(current$pins) %in% new]
    spec$local <- c(current$local[!names(current$local) %in% new], spec$local)
    spec$repos <- unique(c(spec$repos, current$repos))
  }
  invisible(library_ensure(conn, spec, progress = progress, timeout = timeout, call = call))
}
