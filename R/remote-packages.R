# The cluster's R packages: list them, install more.

#' List and install R packages on the cluster
#'
#' `remote_packages()` lists the R packages installed on the cluster (in the
#' library paths of the cluster's R session). `remote_install_packages()` runs
#' `install.packages()` there; the installation output is shown here.
#'
#' On Databricks, packages installed this way live in the library of the
#' execution context and are gone when it is recreated; for packages every
#' session needs, add them as cluster libraries (`{"cran": {"package": ...}}`)
#' or install them into a library on a Volume (`lib`).
#'
#' @param pkgs Names of the packages to install.
#' @param conn A `dbx_connection`.
#' @param repos Repositories to install from (as for `install.packages()`);
#'   `"@CRAN@"` entries become `https://cloud.r-project.org`. A local
#'   repository (`file://...`) must be a path the cluster can read.
#' @param lib The cluster's library directory to install into (created when
#'   missing and put first in the cluster's `.libPaths()`); default the first
#'   library path there.
#' @param type Package type (e.g. `"source"`); `NULL` lets R choose.
#' @param timeout Seconds the installation may take (`NULL`: the connection's
#'   `timeout` option, else no limit); then it is cancelled on the cluster and
#'   a `dbrxr_timeout_error` raised.
#' @return `remote_packages()`: a data.frame with columns `package`, `version`
#'   and `libpath`. `remote_install_packages()`: the installed versions as a
#'   data.frame with columns `package` and `version`, invisibly; a package that
#'   could not be installed is a `dbrxr_remote_error`.
#' @export
#' @examples
#' \donttest{
#' conn <- local_cluster()
#' pk <- remote_packages(conn)
#' head(pk)
#' "stats" %in% pk$package
#' dbx_disconnect(conn)
#' }
remote_packages <- function(conn = dbx_default_connection()) {
  call <- rlang::current_env()
  check_connection(conn)
  ans <- remote_request(conn, list(op = "packages", packages = character()), call = call)
  deliver_answer(ans, call = call)
}

#' @rdname remote_packages
#' @export
remote_install_packages <- function(pkgs, conn = dbx_default_connection(),
                                    repos = getOption("repos"), lib = NULL, type = NULL,
                                    timeout = NULL) {
  call <- rlang::current_env()
  if (!is.character(pkgs) || !length(pkgs) || anyNA(pkgs) || !all(nzchar(pkgs))) {
    abort_dbrxr("`pkgs` must be a character vector of package names.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(pkgs)), call = call)
  }
  if (!is.character(repos) || !length(repos) || anyNA(repos)) {
    abort_dbrxr("`repos` must be a character vector of repository URLs.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(repos)), call = call)
  }
  repos[repos == "@CRAN@"] <- "https://cloud.r-project.org"
  check_string(lib)
  check_string(type)
  check_number(timeout, min = 0)
  check_connection(conn)
  req <- list(op = "install", pkgs = pkgs, repos = repos, lib = lib, type = type,
              packages = character())
  versions <- within_limit(deliver_answer(remote_request(conn, req, timeout = timeout, call = call),
                                          call = call), conn, timeout, call = call)
  failed <- names(versions)[is.na(versions)]
  if (length(failed)) {
    abort_dbrxr(sprintf("Could not install %s on the cluster.", paste(failed, collapse = ", ")),
                "dbrxr_remote_error",
                hints = c("See the installation output above for the reason.",
                          "Check `repos` (the cluster must reach it) and the package's system requirements."),
                package = failed, remote_message = "install.packages() did not install the package",
                call = call)
  }
  invisible(data.frame(package = names(versions), version = unname(versions),
                       stringsAsFactors = FALSE))
}
