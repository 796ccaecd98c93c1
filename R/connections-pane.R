# RStudio's connections pane: opening a dbx_connection (dbx_connect(),
# local_cluster()) or a DBI connection tells the observer
# (getOption("connectionObserver")), which then browses catalogs -> schemas ->
# tables/views -> columns and previews a table through the "sql" target, lazily
# (nothing runs on the cluster until the pane asks). Closing tells it too.
# Without an observer (outside RStudio) these do nothing.

pane_observer <- function() {
  obs <- getOption("connectionObserver")
  if (is.null(obs) || !is.function(obs$connectionOpened)) NULL else obs
}

# type and host identify a connection to the observer.
pane_id <- function(x) {
  if (is(x, "DatabricksSQLConnection")) {
    conn <- x@conn
    type <- "Databricks SQL"
  } else {
    conn <- x
    type <- "Databricks"
  }
  host <- paste0(conn$info$host %||% "databricks", "/", conn$info$cluster_id %||% "")
  list(type = type, host = host, conn = conn)
}

pane_request <- function(conn, req) {
  remote_target(conn, "sql", req, errors = sql_target_error, call = rlang::caller_env())
}

pane_opened <- function(x) {
  obs <- pane_observer()
  if (is.null(obs)) return(invisible(FALSE))
  id <- pane_id(x)
  conn <- id$conn
  dbi <- is(x, "DatabricksSQLConnection")
  if (!dbi) conn$pane <- TRUE  # only connections shown are closed in the pane
  try(obs$connectionOpened(
    type = id$type,
    host = id$host,
    displayName = paste0(if (dbi) "Spark SQL: " else "Databricks: ",
                         if (inherits(conn, "dbx_local_connection")) "local cluster " else "",
                         conn$info$cluster_id %||% ""),
    icon = NULL,
    connectCode = if (dbi) "con <- DBI::dbConnect(dbrxr::databricks_sql(), conn = conn)"
                  else if (inherits(conn, "dbx_local_connection")) "conn <- dbrxr::local_cluster()"
                  else "conn <- dbrxr::dbx_connect()",
    disconnect = function() if (dbi) DBI::dbDisconnect(x) else dbx_disconnect(conn),
    listObjectTypes = function() pane_object_types(),
    listObjects = function(...) pane_list_objects(conn, ...),
    listColumns = function(...) pane_list_columns(conn, ...),
    previewObject = function(rowLimit, ...) pane_preview(conn, rowLimit, ...),
    actions = list(),
    connectionObject = x
  ), silent = TRUE)
  invisible(TRUE)
}

pane_closed <- function(x) {
  obs <- pane_observer()
  if (is.null(obs)) return(invisible(FALSE))
  if (!is(x, "DatabricksSQLConnection") && !isTRUE(x$pane)) return(invisible(FALSE))
  id <- pane_id(x)
  try(obs$connectionClosed(type = id$type, host = id$host), silent = TRUE)
  invisible(TRUE)
}

pane_updated <- function(x, hint = "") {
  obs <- pane_observer()
  if (is.null(obs) || !is.function(obs$connectionUpdated)) return(invisible(FALSE))
  id <- pane_id(x)
  try(obs$connectionUpdated(type = id$type, host = id$host, hint = hint), silent = TRUE)
  invisible(TRUE)
}

pane_object_types <- function() {
  list(catalog = list(contains = list(
    schema = list(contains = list(table = list(contains = "data"),
                                  view = list(contains = "data"))))))
}

# Catalogs at the top; a catalog's schemas; a schema's tables and views.
pane_list_objects <- function(conn, catalog = NULL, schema = NULL, ...) {
  if (is.null(catalog)) {
    names <- as.character(unlist(pane_request(conn, list(op = "catalogs"))))
    return(data.frame(name = names, type = rep("catalog", length(names)), stringsAsFactors = FALSE))
  }
  if (is.null(schema)) {
    names <- as.character(unlist(pane_request(conn, list(op = "schemas", catalog = catalog))))
    return(data.frame(name = names, type = rep("schema", length(names)), stringsAsFactors = FALSE))
  }
  out <- pane_request(conn, list(op = "tables", catalog = catalog, schema = schema))
  data.frame(name = as.character(unlist(out$name)), type = as.character(unlist(out$type)),
             stringsAsFactors = FALSE)
}

pane_list_columns <- function(conn, catalog = NULL, schema = NULL, table = NULL, view = NULL, ...) {
  out <- pane_request(conn, list(op = "columns", name = list(catalog, schema, table %||% view)))
  data.frame(name = as.character(unlist(out$name)), type = as.character(unlist(out$type)),
             stringsAsFactors = FALSE)
}

pane_preview <- function(conn, rowLimit, catalog = NULL, schema = NULL, table = NULL, view = NULL, ...) {
  pane_request(conn, list(op = "preview", name = list(catalog, schema, table %||% view),
                          n = as.integer(rowLimit)))
}
