#' The default connection
#'
#' Every verb of dbrxr takes `conn = dbx_default_connection()`, so a session
#' with one connection never has to name it. There is at most one default:
#'
#' * `dbx_default_connection(conn)` makes `conn` the default (`NULL` unsets it).
#' * Otherwise, a [local_cluster()] or [dbx_connect()] becomes the default
#'   when none is open; the first time in a session, a one-line message
#'   (class `dbrxr_default_connection_message`) says so. So after
#'   `conn <- local_cluster()`, `remote_eval(1)` runs on that cluster.
#' * When there is none at all, a verb without `conn` connects once: to the
#'   workspace configured by environment variables or `~/.databrickscfg` (see
#'   [dbx_connect()]), else to a [local_cluster()] it starts, with a message
#'   saying so. A second cluster is never started implicitly.
#'
#' The default lives in the option `dbrxr.connection`. [dbx_disconnect()] with
#' no argument closes it, and does nothing when none is open.
#'
#' @param conn A `dbx_connection` to make the default, or `NULL` to unset it.
#'   When missing, nothing is set.
#' @return The default `dbx_connection` (when `conn` is given: the previous
#'   default, invisibly, or `NULL`).
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()           # the first one: the default
#' identical(dbx_default_connection(), conn)
#' other <- local_cluster()          # not the default
#' old <- dbx_default_connection(other)
#' identical(dbx_default_connection(), other)
#' dbx_disconnect(other)
#' dbx_disconnect(conn)
#' dbx_disconnect()                  # nothing open: does nothing
dbx_default_connection <- function(conn) {
  if (!missing(conn)) {
    if (!is.null(conn)) check_connection(conn)
    old <- current_default()
    options(dbrxr.connection = conn)
    return(invisible(old))
  }
  current <- current_default()
  if (!is.null(current)) return(current)
  quietly_claim <- function(expr) {
    withCallingHandlers(expr, dbrxr_default_connection_message = function(m) {
      invokeRestart("muffleMessage")
    })
  }
  conn <- tryCatch(quietly_claim(dbx_connect()), dbrxr_config_error = function(e) {
    if (identical(e$not_configured, "true")) NULL else stop(e)
  })
  if (!is.null(conn)) {
    options(dbrxr.connection = conn)
    cli::cli_inform(c("i" = "Using the workspace configured for this R session ({.field {conn$info$host}}) as the default connection."),
                    class = "dbrxr_default_connection_message")
    return(conn)
  }
  cli::cli_inform(c(
    "i" = "No Databricks workspace is configured: using a local cluster for this R session.",
    " " = "Set {.envvar DATABRICKS_HOST} (or a profile) to use a workspace; see {.fn dbx_connect}."
  ), class = c("dbrxr_local_default_message", "dbrxr_default_connection_message"))
  conn <- quietly_claim(local_cluster())
  options(dbrxr.connection = conn)
  conn
}

# The default connection when one is set and open, else NULL.
current_default <- function() {
  conn <- getOption("dbrxr.connection")
  if (is.null(conn) || (inherits(conn, "dbx_connection") && isTRUE(conn$closed))) return(NULL)
  check_connection(conn, "getOption(\"dbrxr.connection\")")
  conn
}

# A new connection becomes the default when there is none open.
claim_default <- function(conn) {
  current <- getOption("dbrxr.connection")
  if (is_open(current)) return(conn)
  options(dbrxr.connection = conn)
  # One line, once per R session: later connections become the default quietly.
  if (!isTRUE(the$default_announced)) {
    the$default_announced <- TRUE
    what <- if (inherits(conn, "dbx_local_connection")) "this local cluster" else "this connection"
    cli::cli_inform(c("i" = paste0("Default connection: ", what, " (verbs without {.arg conn} use it).")),
                    class = "dbrxr_default_connection_message")
  }
  conn
}

forget_default <- function(conn) {
  if (identical(getOption("dbrxr.connection"), conn)) options(dbrxr.connection = NULL)
  invisible()
}

is_open <- function(conn) inherits(conn, "dbx_connection") && !isTRUE(conn$closed)
