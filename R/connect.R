#' Connect to a Databricks workspace
#'
#' Resolves configuration the way the Databricks SDKs do, in this order:
#' explicit arguments, then environment variables (`DATABRICKS_HOST`,
#' `DATABRICKS_TOKEN`, `DATABRICKS_CLUSTER_ID`, `DATABRICKS_CONFIG_PROFILE`,
#' `DATABRICKS_CONFIG_FILE`, `DATABRICKS_AUTH_TYPE`, `DATABRICKS_CLIENT_ID`,
#' `DATABRICKS_CLIENT_SECRET`; empty values count as unset), then a profile of
#' `~/.databrickscfg`, and last the variables of the dbrxr prototype
#' (`DBRX_HOST`, `DBRX_API_TOKEN`, `CLUSTER_ID`).
#'
#' The config file is read only when a profile is requested, or when neither a
#' host nor any credential has been set yet (as in the SDKs). The profile is
#' the requested one, else `default_profile` of its `[__settings__]` section,
#' else `[DEFAULT]`. A profile that was asked for but does not exist is an error.
#'
#' Authentication: `pat` (a personal access token), `oauth-m2m` (a service
#' principal's client id and OAuth secret; tokens are fetched on first use and
#' refreshed before they expire) or `databricks-cli` (tokens from
#' `databricks auth token`, after `databricks auth login`). When more than one
#' method is configured, say which with `auth_type`.
#'
#' Connecting does no network I/O: the cluster is started, and a token fetched,
#' on first use. Settings are checked here instead: a host with a bad port or
#' stray characters, or a credential with spaces or control characters (a
#' token pasted with a line break), is a `dbrxr_config_error`. Credentials
#' written into the host URL (`https://user:secret@...`) are removed with a
#' warning and never used or shown.
#'
#' Every remote request (`remote_eval()`, `remote_score()`, ...) is bounded by
#' its `timeout`, or by the option `dbrxr.timeout` (seconds) when none is
#' given: the whole call, retries and waits included. On expiry the remote
#' command is cancelled and the error is `dbrxr_timeout_error`.
#'
#' @param host Workspace URL, e.g. `https://dbc-1234.cloud.databricks.com`.
#'   `https://` is added when there is no scheme; `http://` is kept (for a
#'   local cluster on loopback).
#' @param token A personal access token.
#' @param cluster_id The all-purpose cluster to run on (Dedicated access mode).
#' @param profile A profile of the config file.
#' @param auth_type One of `"pat"`, `"oauth-m2m"`, `"databricks-cli"`.
#' @param client_id,client_secret OAuth M2M credentials of a service principal.
#' @param config_file Path of the config file (default `~/.databrickscfg`).
#' @param staging Where payloads are staged: a DBFS path (`dbfs:/tmp/dbrxr`,
#'   the default) or a Unity Catalog volume path (`/Volumes/<catalog>/<schema>/<volume>/dbrxr`).
#'   Also read from `DBRXR_STAGING`.
#' @param ... Options of the session: `poll_max` (longest interval between two
#'   status checks, seconds, default 1), `cluster_timeout` (seconds to wait for
#'   the cluster, default 1200), `install_rpy2` (pip-install rpy2 in the
#'   context when missing, default `FALSE`), `progress` (show progress while
#'   waiting: `TRUE`, `FALSE`, or `NULL` for "when interactive"), `timeout`
#'   (default limit in seconds for every verb that runs remote code, see
#'   [remote_eval()]; `NULL`, the default, waits as long as it takes).
#' @return A `dbx_connection`.
#' @seealso [local_cluster()] for the embedded local cluster,
#'   [dbx_default_connection()], [dbx_disconnect()].
#' @export
#' @examples
#' # Explicit arguments (no network I/O happens here):
#' conn <- dbx_connect(host = "dbc-1234.cloud.databricks.com",
#'                     token = "dapi-example-token", cluster_id = "0429-184401-abcd")
#' conn
#' dbx_disconnect(conn)
#'
#' # Two methods without auth_type is an error naming both:
#' try(dbx_connect(host = "h", token = "t", client_id = "id",
#'                 client_secret = "s", cluster_id = "c"))
dbx_connect <- function(host = NULL, token = NULL, cluster_id = NULL, profile = NULL,
                        auth_type = NULL, client_id = NULL, client_secret = NULL,
                        config_file = NULL, staging = NULL, ...) {
  check_text(host)
  check_text(token)
  check_text(cluster_id)
  check_text(profile)
  check_text(auth_type)
  check_text(client_id)
  check_text(client_secret)
  check_text(config_file)
  check_text(staging)
  for (a in c("host", "token", "client_id", "client_secret")) {
    check_not_empty(get(a), a)
  }
  options <- check_session_options(list(...))
  explicit <- c(host = host, token = token, cluster_id = cluster_id, profile = profile,
                auth_type = auth_type, client_id = client_id,
                client_secret = client_secret, config_file = config_file,
                staging = staging)
  if (is.null(explicit)) explicit <- character()
  res <- unwrap(rust_connect(explicit))
  for (w in res$info$warnings) {
    cli::cli_warn(cli_escape(sentence_case(w)), class = c("dbrxr_config_warning", "dbrxr_warning"))
  }
  res$info$warnings <- NULL
  conn <- claim_default(new_connection(res$handle, res$info, options = options))
  pane_opened(conn)  # RStudio's connections pane (R/connections-pane.R)
  conn
}

session_option_defaults <- list(poll_max = 1, cluster_timeout = 1200, install_rpy2 = FALSE,
                                progress = NULL, timeout = NULL)

check_session_options <- function(opts, call = rlang::caller_env()) {
  check_option_names(opts, names(session_option_defaults),
                     paste("Known options:", paste(names(session_option_defaults), collapse = ", ")),
                     call = call, args = names(formals(dbx_connect)))
  check_number(opts$poll_max, "poll_max", min = 0.001, call = call)
  check_number(opts$cluster_timeout, "cluster_timeout", min = 0, call = call)
  check_flag(opts$install_rpy2, "install_rpy2", call = call)
  check_flag(opts$progress, "progress", call = call)
  check_number(opts$timeout, "timeout", min = 0, call = call)
  utils::modifyList(session_option_defaults, opts)
}

# A connection is an environment (so finalizers and per-session state work):
#   handle  the Rust connection (session + protocol state), an external pointer
#   info    host, cluster_id, auth_type, profile, config_file, staging, sources
#   options session options (see check_session_options())
#   local   id of the Rust local cluster this connection owns, or NULL
#   remote  state of the remote R protocol (bootstrap, model cache)
new_connection <- function(handle, info, options = session_option_defaults, local = NULL,
                           class = character()) {
  conn <- new.env(parent = emptyenv())
  conn$handle <- handle
  the$connections <- (the$connections %||% 0) + 1
  conn$key <- paste0("c", the$connections)  # names this connection in tables of R state
  conn$info <- info
  conn$options <- options
  conn$local <- local
  conn$remote <- new.env(parent = emptyenv())
  conn$closed <- FALSE
  class(conn) <- c(class, "dbx_connection")
  reg.finalizer(conn, function(e) try(close_connection(e), silent = TRUE), onexit = TRUE)
  conn
}

close_connection <- function(conn) {
  if (isTRUE(conn$closed)) return(invisible(FALSE))
  conn$closed <- TRUE
  pane_closed(conn)
  on.exit(if (!is.null(conn$local)) local_cluster_stop(conn$local), add = TRUE)
  fw_pool_close(conn)  # the future backend's workers on this connection
  unwrap(rust_session_close(conn$handle))
  invisible(TRUE)
}

#' Close a connection
#'
#' Destroys the connection's execution context on the cluster and removes the
#' temporary files it staged. For a [local_cluster()], also stops the server and
#' its Python processes. Connections are also closed when garbage collected and
#' when R exits.
#'
#' @param conn A `dbx_connection`; `NULL` (the default) closes the default
#'   connection if one is open, and does nothing otherwise.
#' @return `conn`, invisibly.
#' @export
#' @examples
#' conn <- dbx_connect(host = "h.example.com", token = "t", cluster_id = "c")
#' dbx_disconnect(conn)
dbx_disconnect <- function(conn = NULL) {
  if (is.null(conn)) {
    conn <- current_default()
    if (is.null(conn)) return(invisible(NULL))
  }
  check_connection(conn)
  close_connection(conn)
  forget_default(conn)
  invisible(conn)
}

# A connection passed where data belongs (`remote_score(conn, fit, x)`,
# `dbx_read_table(conn, "t")`): every verb takes `conn` by name, after its data.
check_not_connection <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  if (inherits(x, "dbx_connection")) {
    abort_dbrxr(sprintf("`%s` is a dbx_connection, not the data the verb expects there.", arg),
                "dbrxr_input_error",
                hints = "Every verb takes the connection by name, after its data arguments: pass it as `conn = `, e.g. `remote_score(fit, newdata, conn = conn)`.",
                call = call)
  }
  invisible(x)
}

check_connection <- function(conn, arg = rlang::caller_arg(conn), call = rlang::caller_env()) {
  if (!inherits(conn, "dbx_connection")) {
    abort_dbrxr(sprintf("`%s` must be a dbx_connection.", arg), "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(conn)),
                hints = "Create one with `dbx_connect()` or `local_cluster()`.", call = call)
  }
  if (isTRUE(conn$closed)) {
    abort_dbrxr("This connection has been closed.", "dbrxr_input_error",
                hints = "Create a new one with `dbx_connect()` or `local_cluster()`.", call = call)
  }
  invisible(conn)
}

#' @export
format.dbx_connection <- function(x, ...) {
  info <- x$info
  src <- function(attr) {
    s <- info$sources[[attr]]
    if (is.null(s)) "" else paste0("  (", s, ")")
  }
  cred <- switch(info$auth_type,
    pat = "token",
    "oauth-m2m" = "client_id",
    character())
  auth_src <- if (length(cred)) src(cred) else ""
  kind <- if (inherits(x, "dbx_local_connection")) "local cluster" else "workspace"
  status <- if (isTRUE(x$closed)) " [closed]" else ""
  c(sprintf("<dbx_connection> %s%s", kind, status),
    sprintf("  host:     %s%s", info$host, src("host")),
    sprintf("  cluster:  %s%s", info$cluster_id, src("cluster_id")),
    sprintf("  auth:     %s%s", info$auth_type, auth_src),
    if (!is.null(info$profile)) sprintf("  profile:  %s%s", info$profile, src("profile")),
    sprintf("  staging:  %s%s", info$staging %||% "dbfs:/tmp/dbrxr", 
            if (is.null(info$staging)) "  (default)" else src("staging")))
}

#' @export
print.dbx_connection <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

#' @export
str.dbx_connection <- function(object, ...) {
  cat(sprintf("<dbx_connection> %s, cluster %s, auth %s\n", object$info$host,
              object$info$cluster_id, object$info$auth_type))
  invisible()
}

