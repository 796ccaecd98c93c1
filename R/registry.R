# Promoting models: aliases set, moved and deleted, and a model's versions,
# on the Unity Catalog registry the connection's cluster uses. Each verb is
# one request to the protocol's `mlflow` target (inst/python/dbrxr_mlflow.py),
# where Python MLflow owns the registry's credentials, as for
# remote_log_model(). Names, aliases and versions are checked here first.

#' Point a model's alias at a version, or remove it
#'
#' `dbx_model_alias()` sets `alias` (e.g. `"champion"`) of the registered
#' model `name` to `version`, or moves it there from the version it named
#' before: promoting a challenger and rolling back are the same call. Every
#' `models:/name@alias` resolved afterwards (by [remote_score()],
#' [remote_score_table()], a scheduled [remote_job()] at its next run, or
#' Python's `mlflow.pyfunc.load_model()`) gets the new version.
#' `dbx_model_alias_delete()` removes the alias; the version stays.
#'
#' Errors: `dbrxr_input_error` (a bad name, alias or version, before any
#' network call), `dbrxr_model_not_found_error`,
#' `dbrxr_model_version_not_found_error`, `dbrxr_model_alias_not_found_error`
#' (all also `dbrxr_not_found_error`), `dbrxr_model_permission_error` (the
#' registry refused; also `dbrxr_auth_error`).
#'
#' @param name The registered model, `catalog.schema.model`.
#' @param alias The alias: letters, digits and underscores, starting with a
#'   letter.
#' @param version The version (a whole number, or a string of digits).
#' @param conn A `dbx_connection`.
#' @param timeout Seconds the call may take; see [remote_score()].
#' @return `dbx_model_alias()`: a `dbx_model_alias`: `name`,
#'   `alias`, `version` (integer), `previous` (the version the alias named
#'   before, `NA` if none) and `run_id`. `dbx_model_alias_delete()`: the
#'   version the alias named, invisibly.
#' @seealso [dbx_model_versions()], [dbx_models()], [remote_log_model()]
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' ex <- head(mtcars[c("wt", "hp")])
#' remote_log_model(lm(mpg ~ wt, mtcars), "main.demo.mpg", input_example = ex,
#'                  alias = "champion", conn = conn)
#' remote_log_model(lm(mpg ~ wt + hp, mtcars), "main.demo.mpg", input_example = ex,
#'                  conn = conn)
#' dbx_model_alias("main.demo.mpg", "champion", 2, conn = conn)   # promote
#' dbx_model_alias("main.demo.mpg", "champion", 1, conn = conn)   # roll back
#' dbx_model_alias("main.demo.mpg", "challenger", 2, conn = conn)
#' dbx_model_alias_delete("main.demo.mpg", "challenger", conn = conn)
#' dbx_model_versions("main.demo.mpg", conn = conn)
#' dbx_disconnect(conn)
dbx_model_alias <- function(name, alias, version, conn = dbx_default_connection(), timeout = NULL) {
  call <- rlang::current_env()
  check_present(c(name = missing(name), alias = missing(alias), version = missing(version)), call)
  check_uc_model_name(name, call = call)
  check_model_alias(alias, call = call)
  version <- check_version_number(version, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  res <- remote_target(conn, "mlflow", list(op = "alias", name = name, alias = alias, version = version),
                       timeout = timeout, errors = mlflow_errors, call = call)
  structure(list(name = res$name, alias = res$alias, version = as.integer(res$version),
                 previous = as.integer(res$previous %||% NA_integer_), run_id = res$run_id %||% ""),
            class = "dbx_model_alias")
}

#' @rdname dbx_model_alias
#' @export
dbx_model_alias_delete <- function(name, alias, conn = dbx_default_connection(), timeout = NULL) {
  call <- rlang::current_env()
  check_present(c(name = missing(name), alias = missing(alias)), call)
  check_uc_model_name(name, call = call)
  check_model_alias(alias, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  res <- remote_target(conn, "mlflow", list(op = "alias_delete", name = name, alias = alias),
                       timeout = timeout, errors = mlflow_errors, call = call)
  invisible(as.integer(res$version))
}

#' @export
print.dbx_model_alias <- function(x, ...) {
  was <- if (is.na(x$previous)) "new alias"
         else if (identical(x$previous, x$version)) "unchanged"
         else sprintf("was version %d", x$previous)
  cat(sprintf("<dbx_model_alias> %s@%s -> version %d (%s)\n", x$name, x$alias, x$version, was))
  invisible(x)
}

#' The versions of a registered model
#'
#' One row per version of `name`, oldest first, with the aliases that point
#' at it and its signature (read from the version's `MLmodel` file).
#'
#' Errors: `dbrxr_input_error` (a bad name, before any network call),
#' `dbrxr_model_not_found_error`, `dbrxr_model_permission_error`.
#'
#' @inheritParams dbx_model_alias
#' @return A data frame with columns `version` (integer), `aliases`
#'   (comma-separated), `run_id`, `created` (POSIXct, UTC), `status`
#'   (`READY`, ...) and `signature` (`"wt: double, hp: double -> double"`).
#' @seealso [dbx_model_alias()], [dbx_models()]
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' remote_log_model(lm(mpg ~ wt, mtcars), "main.demo.mpg", input_example = head(mtcars["wt"]),
#'                  alias = "champion", conn = conn)
#' dbx_model_versions("main.demo.mpg", conn = conn)
#' dbx_disconnect(conn)
dbx_model_versions <- function(name, conn = dbx_default_connection(), timeout = NULL) {
  call <- rlang::current_env()
  check_present(c(name = missing(name)), call)
  check_uc_model_name(name, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  res <- remote_target(conn, "mlflow", list(op = "versions", name = name), timeout = timeout,
                       errors = mlflow_errors, call = call)
  cols <- res$columns
  chr <- function(x) as.character(unlist(x) %||% character())
  data.frame(version = as.integer(chr(cols$version)), aliases = chr(cols$aliases),
             run_id = chr(cols$run_id),
             created = .POSIXct(as.numeric(unlist(cols$created) %||% numeric()) / 1000, tz = "UTC"),
             status = chr(cols$status), signature = chr(cols$signature), stringsAsFactors = FALSE)
}

# ---- checks ----------------------------------------------------------------------------

# `absent`: named flags, TRUE for an argument the caller left out.
check_present <- function(absent, call) {
  if (!any(absent)) return(invisible())
  arg <- names(absent)[absent][[1]]
  abort_dbrxr(sprintf("`%s` is missing.", arg), "dbrxr_input_error", call = call)
}

check_model_alias <- function(alias, arg = rlang::caller_arg(alias), call = rlang::caller_env()) {
  check_text(alias, arg, null_ok = FALSE, call = call)
  if (!grepl("^[A-Za-z_][A-Za-z0-9_]*$", alias)) {
    abort_dbrxr(sprintf("`%s` must be letters, digits and underscores, starting with a letter.", arg),
                "dbrxr_input_error", problems = sprintf("Got '%s'.", alias), call = call)
  }
  invisible(alias)
}

# A registry version (1 to 2147483647) given as a number or a string of
# digits, as a string of digits.
check_version_number <- function(version, arg = rlang::caller_arg(version), call = rlang::caller_env()) {
  ok <- length(version) == 1L && !is.na(version) &&
    ((is.numeric(version) && version == round(version)) ||
       (is.character(version) && grepl("^[0-9]+$", version)))
  v <- if (ok) as.numeric(version) else NA_real_
  if (!ok || v < 1 || v > .Machine$integer.max) {
    abort_dbrxr(sprintf("`%s` must be a model version: a whole number from 1 to %d.", arg,
                        .Machine$integer.max),
                "dbrxr_input_error",
                problems = if (is.numeric(version) || is.character(version)) {
                  sprintf("It is %s.", paste(format(version), collapse = ", "))
                } else sprintf("It is %s.", obj_type(version)),
                hints = "List the versions with `dbx_model_versions(name)`.", call = call)
  }
  format(v, scientific = FALSE)
}

# ---- errors ------------------------------------------------------------------------------

# A registry lookup's classed failure (dbrxr_mlflow.py's model_version()),
# from the mlflow target or from a table job resolving a models:/ URI; NULL
# for any other error.
registry_error <- function(err, call) {
  msg <- err$message %||% "(no message)"
  model <- err$model
  versions_hint <- if (!is.null(model)) sprintf("List its versions and aliases: `dbx_model_versions(\"%s\")`.", model)
  switch(err$class %||% "",
    model_not_found = abort_dbrxr(msg, c("dbrxr_model_not_found_error", "dbrxr_not_found_error"),
                                  hints = "Check the name (catalog.schema.model) with `dbx_models()`.",
                                  model = model, call = call),
    version_not_found = abort_dbrxr(msg, c("dbrxr_model_version_not_found_error", "dbrxr_not_found_error"),
                                    hints = versions_hint, model = model, version = err$version,
                                    call = call),
    alias_not_found = abort_dbrxr(msg, c("dbrxr_model_alias_not_found_error", "dbrxr_not_found_error"),
                                  hints = c(versions_hint,
                                            sprintf("Set it with `dbx_model_alias(\"%s\", \"%s\", <version>)`.",
                                                    model %||% "name", err$alias %||% "alias")),
                                  model = model, alias = err$alias, call = call),
    permission = abort_dbrxr(msg, c("dbrxr_model_permission_error", "dbrxr_auth_error"),
                             hints = "Ask for the privileges on the model (e.g. EXECUTE to read it, ownership to set aliases).",
                             model = model, error_code = err$error_code, call = call),
    # The registry failed otherwise (credentials, a lost server): MLflow's words.
    mlflow = abort_dbrxr(msg, "dbrxr_mlflow_error", error_code = err$error_code, call = call),
    NULL)
}
