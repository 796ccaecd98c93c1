#' Environment variables for Python's MLflow to reach this connection's registry
#'
#' What a Python process (a colleague's script, a notebook outside Databricks,
#' a CI step) needs to log, register and load models in the same workspace
#' and Unity Catalog registry as `conn`: the workspace host, the connection's
#' credentials (`DATABRICKS_TOKEN`, or a service principal's
#' `DATABRICKS_CLIENT_ID`/`DATABRICKS_CLIENT_SECRET`, or the Databricks CLI's
#' profile), `MLFLOW_TRACKING_URI = "databricks"` and
#' `MLFLOW_REGISTRY_URI = "databricks-uc"`. On the local cluster, also
#' `MLFLOW_S3_ENDPOINT_URL`: the storage its registry hands older MLflow
#' clients credentials for (a workspace's is the cloud's own).
#'
#' The value holds secrets: its print method masks them, but `as.character()`
#' and `Sys.setenv()` see them. Pass it to a child process rather than your
#' global environment, e.g. `processx::run(python, args, env = c("current",
#' dbx_mlflow_env(conn)))` or `withr::with_envvar(dbx_mlflow_env(conn), ...)`.
#'
#' @param conn A `dbx_connection`.
#' @return A named character vector of class `dbx_env`.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' env <- dbx_mlflow_env(conn)
#' env                   # the token is masked
#' names(env)
#' dbx_disconnect(conn)
dbx_mlflow_env <- function(conn = dbx_default_connection()) {
  check_connection(conn)
  auth <- unlist(unwrap(rust_client_env(conn$handle)))
  env <- c(auth, MLFLOW_TRACKING_URI = "databricks", MLFLOW_REGISTRY_URI = "databricks-uc")
  if (!is.null(conn$local_info)) {
    env <- c(env, MLFLOW_S3_ENDPOINT_URL = paste0(sub("/+$", "", env[["DATABRICKS_HOST"]]), "/s3"))
  }
  structure(env, class = "dbx_env")
}

#' @export
print.dbx_env <- function(x, ...) {
  cat(sprintf("<dbx_env> %d variables\n", length(x)))
  cat(sprintf("  %s=%s\n", names(x), format(x)), sep = "")
  invisible(x)
}

#' @export
format.dbx_env <- function(x, ...) {
  secret <- grepl("TOKEN|SECRET|PASSWORD", names(x))
  stats::setNames(ifelse(secret, "<hidden>", unclass(x)), names(x))
}
