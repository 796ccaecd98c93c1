#' The default connection
#'
#' Every verb of dbrxr takes `conn = dbx_default_connection()`. It is, in order:
#' 1. `getOption("dbrxr.connection")`, if set;
#' 2. a workspace connection made by [dbx_connect()] from environment
#'    variables or `~/.databrickscfg`, if one is configured (made once per R
#'    session and reused);
#' 3. otherwise a [local_cluster()], started once per R session, with a
#'    message saying so.
#'
#' @return A `dbx_connection`.
#' @export
#' @examples
#' \donttest{
#' conn <- dbx_default_connection()
#' conn
#' }
dbx_default_connection <- function() {
  conn <- getOption("dbrxr.connection")
  if (!is.null(conn)) {
    check_connection(conn, "getOption(\"dbrxr.connection\")")
    return(conn)
  }
  if (is_open(the$default_workspace)) return(the$default_workspace)
  conn <- tryCatch(dbx_connect(), dbrxr_config_error = function(e) {
    if (identical(e$not_configured, "true")) NULL else stop(e)
  })
  if (!is.null(conn)) {
    the$default_workspace <- conn
    return(conn)
  }
  if (!is_open(the$default_local)) {
    cli::cli_inform(c(
      "i" = "No Databricks workspace is configured: using a local cluster for this R session.",
      " " = "Set {.envvar DATABRICKS_HOST} (or a profile) to use a workspace; see {.fn dbx_connect}."
    ), class = "dbrxr_local_default_message")
    the$default_local <- local_cluster()
  }
  the$default_local
}

is_open <- function(conn) inherits(conn, "dbx_connection") && !isTRUE(conn$closed)
