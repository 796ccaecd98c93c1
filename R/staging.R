# Moving bytes to and from the cluster's storage (DBFS or a Volume, see the
# `staging` argument of dbx_connect()). Files are named by content hash under
# `<staging>/cache/` (persistent) or `<staging>/sessions/<id>/` (removed when
# the connection closes).

#' Stage bytes under their content hash (internal)
#'
#' @param x A raw vector, or the path of a local file.
#' @param scope `"session"` (removed with the connection) or `"cache"`
#'   (persistent, shared).
#' @return `list(path, cluster_path, hash, size, uploaded)`: `path` as the API
#'   sees it (`dbfs:/...` or `/Volumes/...`), `cluster_path` as Python on the
#'   cluster sees it (`/dbfs/...` or `/Volumes/...`); `uploaded` is FALSE when
#'   a file of that hash already existed and nothing was sent.
#' @noRd
stage_bytes <- function(conn, x, scope = c("session", "cache"), progress = NULL,
                        call = rlang::caller_env()) {
  scope <- match.arg(scope)
  check_connection(conn, call = call)
  x <- check_payload(x, call = call)
  run_job(stage_start(conn, x, scope, call = call), progress %||% conn$options$progress,
          call = call)
}

# Start an upload as a Rust job (wait with run_job()).
stage_start <- function(conn, x, scope, path = NULL, overwrite = TRUE,
                        call = rlang::caller_env()) {
  unwrap(rust_stage_start(conn$handle, x, scope, path, overwrite), call = call)
}

#' Download a staged file into memory (internal)
#' @noRd
stage_fetch <- function(conn, path, progress = NULL, call = rlang::caller_env()) {
  check_connection(conn, call = call)
  check_text(path, null_ok = FALSE, call = call)
  run_job(unwrap(rust_fetch_start(conn$handle, path, NULL), call = call),
          progress %||% conn$options$progress, call = call)
}

#' Remove a staged file (internal; a missing file is fine)
#' @noRd
stage_remove <- function(conn, path, call = rlang::caller_env()) {
  check_connection(conn, call = call)
  check_text(path, null_ok = FALSE, call = call)
  invisible(run_job(unwrap(rust_remove_start(conn$handle, path), call = call), FALSE, call = call))
}

# A raw vector, or the normalised path of an existing local file.
check_payload <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (is.raw(x)) return(x)
  if (is.character(x) && length(x) == 1L && !is.na(x)) {
    if (!file.exists(x) || dir.exists(x)) {
      abort_dbrxr(sprintf("`%s` is not an existing file.", arg), "dbrxr_input_error",
                  problems = sprintf("Nothing to read at `%s`.", x),
                  hints = "Pass a raw vector, or the path of a local file.", call = call)
    }
    return(normalizePath(x, mustWork = TRUE))
  }
  abort_dbrxr(sprintf("`%s` must be a raw vector or the path of a local file.", arg),
              "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(x)), call = call)
}

#' Upload bytes or a file to the cluster's storage
#'
#' Uploads through the Files API (one streamed request) for `/Volumes/...`
#' paths and through DBFS (`create`/`add-block`/`close` in 1 MiB blocks)
#' otherwise. Without `path`, the file is stored under its SHA-256 in the
#' `cache/` directory of the connection's staging location, and nothing is
#' sent when it is already there.
#'
#' @param x A raw vector, or the path of a local file.
#' @param path Remote path: `dbfs:/...` (or `/dbfs/...`) or
#'   `/Volumes/<catalog>/<schema>/<volume>/...`. `NULL` stores under the
#'   content hash.
#' @param conn A `dbx_connection`.
#' @param overwrite Replace an existing file at `path`.
#' @return The remote path (as the API sees it: `dbfs:/...` or `/Volumes/...`).
#' @seealso [dbx_download()]
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' p <- dbx_upload(serialize(mtcars, NULL), conn = conn)
#' p
#' identical(unserialize(dbx_download(p, conn = conn)), mtcars)
#' dbx_disconnect(conn)
dbx_upload <- function(x, path = NULL, conn = dbx_default_connection(), overwrite = TRUE) {
  check_connection(conn)
  x <- check_payload(x)
  check_text(path)
  check_flag(overwrite, null_ok = FALSE)
  scope <- "cache"
  res <- run_job(stage_start(conn, x, scope, path, overwrite), conn$options$progress)
  res$path
}

#' Download a file from the cluster's storage
#'
#' Reads through the Files API for `/Volumes/...` paths and through DBFS
#' (parallel 1 MiB ranged reads) otherwise.
#'
#' @param path Remote path (`dbfs:/...`, `/dbfs/...` or `/Volumes/...`).
#' @param dest Local file to write. It is written atomically (a temporary file
#'   in the same directory, then renamed). `NULL` returns the bytes.
#' @param conn A `dbx_connection`.
#' @return A raw vector when `dest` is `NULL`, else `dest`, invisibly.
#' @seealso [dbx_upload()]
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' p <- dbx_upload(charToRaw("hello"), conn = conn)
#' rawToChar(dbx_download(p, conn = conn))
#' dbx_disconnect(conn)
dbx_download <- function(path, dest = NULL, conn = dbx_default_connection()) {
  check_connection(conn)
  check_text(path, null_ok = FALSE)
  check_text(dest)
  if (is.null(dest)) return(stage_fetch(conn, path, call = rlang::current_env()))
  dest <- path.expand(dest)
  if (!dir.exists(dirname(dest))) {
    abort_dbrxr(sprintf("The directory of `dest` does not exist: %s.", dirname(dest)),
                "dbrxr_input_error", hints = "Create it first, e.g. with `dir.create()`.")
  }
  run_job(unwrap(rust_fetch_start(conn$handle, path, dest)), conn$options$progress)
  invisible(dest)
}
