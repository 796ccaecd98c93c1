# The DBI backend: Spark SQL on a dbx_connection's cluster. Every call is one
# request to the context's "sql" target (inst/python/dbrxr_sql.py) through
# the one protocol; results come back as R data frames converted from Arrow
# (the type mapping of dbx_read_table()), never as text.

#' @import DBI
#' @importFrom methods setClass setMethod new show is
#' @exportMethod dbGetInfo dbIsValid dbDisconnect show dbFetch dbClearResult dbHasCompleted
#' @exportMethod dbGetStatement dbGetRowCount dbGetRowsAffected dbColumnInfo dbBind
#' @exportMethod dbBegin dbCommit dbRollback dbQuoteIdentifier dbUnquoteIdentifier
#' @exportMethod dbQuoteString dbQuoteLiteral dbListFields dbExistsTable dbReadTable
#' @exportMethod dbWriteTable dbRemoveTable
NULL

#' Spark SQL through DBI
#'
#' `databricks_sql()` is a DBI driver: `DBI::dbConnect(databricks_sql(), conn =
#' conn)` gives a DBI connection that runs Spark SQL on the cluster of a
#' `dbx_connection` (a workspace from [dbx_connect()], or [local_cluster()]),
#' in its execution context, through the same request path as every dbrxr
#' verb. It works with DBI's verbs, with dbplyr (a Spark SQL dialect:
#' backticks, `LIMIT`, Spark's functions) and with RStudio's connections pane.
#'
#' Time limit: each DBI call (`dbGetQuery()`, `dbExecute()`, `dbFetch()`, ...)
#' has one deadline: the `dbx_connection`'s `timeout` option (see
#' [dbx_connect()]), else the option `dbrxr.timeout`, else an hour. Past it the
#' statement is cancelled on the cluster and the error is a
#' `dbrxr_timeout_error`; a workspace that stalls never makes a call hang.
#'
#' Names: a string is used as written (`"t"`, `"schema.t"` or
#' `"catalog.schema.t"`, unquoted); `DBI::Id(catalog =, schema =, table =)`
#' names a table part by part, each part quoted with backticks. The local
#' cluster's Spark takes `catalog.schema.table` natively, as a Unity Catalog
#' workspace does.
#'
#' Results: the type mapping of [dbx_read_table()] (`decimal` is a double,
#' `timestamp` is `POSIXct` in UTC), `bigint` as `dbConnect()`'s `bigint`
#' says (by default `bit64::integer64` when bit64 is installed, else double),
#' `binary` is a list of raw vectors (a `blob` when that package is
#' installed), arrays, maps and structs are JSON text. A value that does not
#' fit its R type (a bigint beyond 2^53 as a double or beyond R's integer
#' range, a decimal with more digits than a double holds) raises a
#' `dbrxr_precision_warning` naming its column. `dbSendQuery()` keeps the
#' result on the cluster and `dbFetch(res, n)` brings it `n` rows at a time.
#'
#' Parameters: statements take positional `?` placeholders, bound with
#' `params =` in `dbGetQuery()`, `dbExecute()` and `dbSendQuery()`, or with
#' `DBI::dbBind()`. Each value is written into the statement as its exact
#' Spark SQL literal (never pasted unescaped); a statement runs once per row
#' of parameters, all rows in one request. `DBI::dbAppendTable()` inserts a
#' data frame with one `INSERT` of literals (up to 1,000 rows; larger ones
#' without binary columns go through [dbx_write_table()]'s atomic append).
#'
#' Spark SQL errors are `dbrxr_sql_error`s with Spark's fields:
#' `error_class` (e.g. `"PARSE_SYNTAX_ERROR"`), `sqlstate`, `line` and `pos`
#' (the position in the statement, when Spark gives one) and `statement`.
#'
#' Not supported: transactions (Spark SQL has none), temporary tables and
#' named parameters; on the local cluster `UPDATE`, `DELETE` and `MERGE`
#' (Delta features), and `INSERT` counts its rows by counting the table.
#'
#' @param conn A `dbx_connection`. When `NULL`, one is made with
#'   [dbx_connect()] from `...` if any are given (and closed by
#'   `dbDisconnect()`), else [dbx_default_connection()] is used.
#' @param ... For `dbConnect()`: arguments of [dbx_connect()].
#' @param bigint How `bigint` columns become R vectors: `"integer64"`
#'   (exact, needs bit64; the default when bit64 is installed), `"numeric"`
#'   (double; the default without bit64), `"integer"` (values beyond R's
#'   integer range become `NA`) or `"character"` (exact text). Values that do
#'   not fit raise a `dbrxr_precision_warning`.
#' @return `databricks_sql()`: a `DatabricksSQLDriver`; `dbConnect()`: a
#'   `DatabricksSQLConnection`.
#' @export
#' @examplesIf dbrxr:::spark_example_ok()
#' conn <- local_cluster()
#' con <- DBI::dbConnect(databricks_sql(), conn = conn)
#' DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.demo")
#' DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "demo", table = "cars"),
#'                   mtcars, overwrite = TRUE)
#' DBI::dbGetQuery(con, "SELECT cyl, AVG(mpg) AS mpg FROM main.demo.cars GROUP BY cyl")
#' DBI::dbGetQuery(con, "SELECT * FROM main.demo.cars WHERE cyl = ? AND mpg > ?",
#'                 params = list(6, 20))
#' DBI::dbListTables(con, catalog = "main", schema = "demo")
#' DBI::dbDisconnect(con)
#' dbx_disconnect(conn)
databricks_sql <- function() {
  new("DatabricksSQLDriver")
}

#' @rdname databricks_sql
#' @export
setClass("DatabricksSQLDriver", contains = "DBIDriver")

#' @rdname databricks_sql
#' @export
setClass("DatabricksSQLConnection", contains = "DBIConnection",
         slots = c(conn = "ANY", state = "environment"))

#' @rdname databricks_sql
#' @export
setClass("DatabricksSQLResult", contains = "DBIResult",
         slots = c(connection = "DatabricksSQLConnection", sql = "character",
                   state = "environment"))

#' @rdname databricks_sql
#' @param drv A `DatabricksSQLDriver`.
#' @export
setMethod("dbConnect", "DatabricksSQLDriver", function(drv, conn = NULL, bigint = NULL, ...) {
  bigint <- check_bigint(bigint, rlang::current_env())
  owned <- FALSE
  if (is.null(conn)) {
    if (...length()) {
      conn <- dbx_connect(...)
      owned <- TRUE
    } else {
      conn <- dbx_default_connection()
    }
  }
  check_connection(conn)
  state <- new.env(parent = emptyenv())
  state$owned <- owned
  state$bigint <- bigint
  state$valid <- TRUE
  state$open <- list()  # states of results not cleared
  con <- new("DatabricksSQLConnection", conn = conn, state = state)
  pane_opened(con)
  con
})

setMethod("show", "DatabricksSQLDriver", function(object) {
  cat("<DatabricksSQLDriver>\n")
})

setMethod("show", "DatabricksSQLConnection", function(object) {
  info <- object@conn$info
  cat(sprintf("<DatabricksSQLConnection> Spark SQL on %s, cluster %s%s\n",
              info$host %||% "?", info$cluster_id %||% "?",
              if (dbi_valid(object)) "" else " (disconnected)"))
})

setMethod("show", "DatabricksSQLResult", function(object) {
  cat(sprintf("<DatabricksSQLResult>%s\n  %s\n", if (object@state$cleared) " (cleared)" else "",
              object@sql))
})

setMethod("dbGetInfo", "DatabricksSQLDriver", function(dbObj, ...) {
  list(driver.version = utils::packageVersion("dbrxr"), client.version = utils::packageVersion("dbrxr"),
       max.connections = NA_integer_)
})

setMethod("dbGetInfo", "DatabricksSQLConnection", function(dbObj, ...) {
  info <- dbObj@conn$info
  list(db.version = "Spark SQL", dbname = info$cluster_id %||% "",
       username = "", host = info$host %||% "", port = NA_integer_)
})

setMethod("dbIsValid", "DatabricksSQLDriver", function(dbObj, ...) TRUE)
setMethod("dbIsValid", "DatabricksSQLConnection", function(dbObj, ...) dbi_valid(dbObj))
setMethod("dbIsValid", "DatabricksSQLResult", function(dbObj, ...) {
  !dbObj@state$cleared && dbi_valid(dbObj@connection)
})

# dbConnect()'s `bigint`: how bigint columns become R vectors; the default
# is exact (integer64) when bit64 is installed, as in odbc and RPostgres.
bigint_choices <- c("integer64", "integer", "numeric", "character")

check_bigint <- function(bigint, call) {
  if (is.null(bigint)) return(if (requireNamespace("bit64", quietly = TRUE)) "integer64" else "numeric")
  if (!is.character(bigint) || length(bigint) != 1L || is.na(bigint) || !bigint %in% bigint_choices) {
    abort_dbrxr(sprintf("`bigint` must be one of %s.", paste0("\"", bigint_choices, "\"", collapse = ", ")),
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(bigint)), call = call)
  }
  if (bigint == "integer64" && !requireNamespace("bit64", quietly = TRUE)) {
    abort_dbrxr("`bigint = \"integer64\"` needs the bit64 package.", "dbrxr_input_error",
                hints = "Install it with `install.packages(\"bit64\")`, or choose \"numeric\" or \"character\".",
                call = call)
  }
  bigint
}

# The request's name for a connection's bigint mapping (dbrxr_sql.py).
bigint_request <- function(con) {
  switch(con@state$bigint %||% "numeric", numeric = "double", con@state$bigint)
}

dbi_valid <- function(con) {
  isTRUE(con@state$valid) && !isTRUE(con@conn$closed)
}

setMethod("dbDisconnect", "DatabricksSQLConnection", function(conn, ...) {
  if (!dbi_valid(conn)) {
    cli::cli_warn("The connection is already closed.", class = c("dbrxr_warning"))
    return(invisible(TRUE))
  }
  open <- Filter(function(s) !s$cleared, conn@state$open)
  if (length(open)) {
    cli::cli_warn(sprintf("%d result set%s not cleared before disconnecting (use `DBI::dbClearResult()`).",
                          length(open), if (length(open) > 1) "s were" else " was"),
                  class = "dbrxr_warning")
  }
  conn@state$open <- list()
  conn@state$valid <- FALSE
  pane_closed(conn)
  if (isTRUE(conn@state$owned)) dbx_disconnect(conn@conn)
  invisible(TRUE)
})

# ---- one request to the SQL target -------------------------------------------------

dbi_check <- function(con, call) {
  if (!dbi_valid(con)) {
    abort_dbrxr("This DBI connection is closed.", "dbrxr_input_error",
                hints = "Open a new one with `DBI::dbConnect(dbrxr::databricks_sql(), conn = conn)`.",
                call = call)
  }
}

sql_request <- function(con, req, call = rlang::caller_env()) {
  dbi_check(con, call)
  local_call_deadline(default_limit(con@conn, dbi_timeout_default))  # R/deadline.R
  req$bigint <- bigint_request(con)
  out <- remote_target(con@conn, "sql", req, errors = sql_target_error, call = call)
  if (is.list(out) && is.data.frame(out$df)) out$df <- dbi_frame(out$df)
  out
}

# Target errors of dbrxr_sql.py as dbrxr conditions.
sql_target_error <- function(err, call) {
  fields <- err[setdiff(names(err), c("class", "message", "traceback"))]
  cls <- switch(err$class %||% "", input = "dbrxr_input_error", "dbrxr_sql_error")
  hints <- character()
  if (!is.null(err$context) && nzchar(err$context)) hints <- c(hints, err$context)
  msg <- if (identical(err$class, "sql")) paste("Spark SQL failed:", err$message) else err$message
  rlang::exec(abort_dbrxr, msg, cls, hints = hints, !!!fields,
              remote_traceback = err$traceback, call = call)
}

check_statement <- function(statement, call) {
  # DBI::SQL() is an S4 class over character: send its plain text.
  if (is(statement, "SQL")) statement <- as.vector(statement, "character")
  check_text(statement, arg = "statement", null_ok = FALSE, call = call)
  # dbplyr's sql() is a classed character: the request takes plain text.
  as.vector(statement, "character")
}

# A result data frame as DBI users expect it: binary columns as blobs, and a
# dbrxr_precision_warning for columns whose values did not fit their R type.
dbi_frame <- function(df) {
  if (is.null(df)) return(data.frame())
  # bigint = "integer" was asked for: values beyond its range are NA, said
  # by a message (DBItest wants no warning there).
  na_int <- attr(df, "dbrxr_na_integer")
  if (length(na_int)) {
    attr(df, "dbrxr_na_integer") <- NULL
    cli::cli_inform(c("bigint value{?s} of column{?s} {na_int} beyond R's integer range became NA (`bigint = \"integer\"`)."),
                    class = c("dbrxr_precision_message"))
  }
  lost <- attr(df, "dbrxr_inexact")
  if (length(lost)) {
    attr(df, "dbrxr_inexact") <- NULL
    cli::cli_warn(c("Values of column{?s} {lost} do not fit {?its/their} R type and lost precision.",
                    "i" = "bigint: exact with `DBI::dbConnect(..., bigint = \"integer64\")` (bit64) or \"character\"; decimal beyond 15 digits: CAST it to STRING in the query."),
                  class = c("dbrxr_precision_warning", "dbrxr_warning"))
  }
  for (j in seq_along(df)) {
    if (is.list(df[[j]]) && requireNamespace("blob", quietly = TRUE)) {
      df[[j]] <- blob::as_blob(df[[j]])
    }
  }
  df
}

# ---- statements ------------------------------------------------------------------------

#' @rdname databricks_sql
#' @param statement A Spark SQL statement (a string or `DBI::SQL()`).
#' @param n Rows to fetch: `-1` or `Inf` for all.
#' @param params Values for the statement's `?` placeholders: an unnamed
#'   list (or data frame) with one element per `?`, in order. Each element
#'   holds one value per row: the statement runs once per row (all in one
#'   request) and the results are combined. Values are written into the
#'   statement as exact Spark SQL literals (see `DBI::dbQuoteLiteral()`).
#' @export
setMethod("dbGetQuery", c("DatabricksSQLConnection", "character"),
          function(conn, statement, ..., n = -1, params = NULL) {
  call <- rlang::current_env()
  statement <- check_statement(statement, call)
  check_fetch_n(n, call)
  if (!is.null(params)) statement <- bind_statements(conn, statement, params, call)
  if ((is.finite(n) && n >= 0) || isTRUE(attr(statement, "empty"))) {
    res <- dbi_send(conn, statement, call)
    on.exit(DBI::dbClearResult(res))
    return(dbFetch(res, n = n))
  }
  out <- sql_request(conn, list(op = "query", sql = as.vector(statement)), call = call)
  out$df
})

#' @rdname databricks_sql
#' @export
setMethod("dbExecute", c("DatabricksSQLConnection", "character"),
          function(conn, statement, ..., params = NULL) {
  call <- rlang::current_env()
  statement <- check_statement(statement, call)
  if (!is.null(params)) {
    statement <- bind_statements(conn, statement, params, call)
    if (isTRUE(attr(statement, "empty"))) return(0)
  }
  out <- sql_request(conn, list(op = "execute", sql = as.vector(statement)), call = call)
  as.numeric(out$rows_affected)
})

#' @rdname databricks_sql
#' @export
setMethod("dbSendQuery", c("DatabricksSQLConnection", "character"),
          function(conn, statement, ..., params = NULL) {
  call <- rlang::current_env()
  statement <- check_statement(statement, call)
  if (!is.null(params)) {
    res <- dbi_send(conn, structure(statement, unbound = TRUE), call)
    tryCatch(dbi_bind(res, params, call), error = function(e) {
      res@state$cleared <- TRUE
      rlang::cnd_signal(e)
    })
    return(res)
  }
  n_placeholders <- length(sql_placeholders(statement))
  dbi_send(conn, structure(statement, unbound = n_placeholders > 0), call)
})

# A result set of `statements` (one, or one per row of bound parameters).
# An `unbound` statement has placeholders: it runs when dbBind() gives values.
dbi_send <- function(conn, statements, call) {
  # One open result set per connection, as DBI specifies: a new one clears the last.
  open <- Filter(function(s) !s$cleared, conn@state$open)
  if (length(open)) {
    cli::cli_warn("The previous result set was cleared: a connection has one open result set.",
                  class = "dbrxr_warning")
    for (s in open) {
      s$cleared <- TRUE
      if (s$has_result) dbi_clear_quiet(conn, s$id)
    }
    conn@state$open <- list()
  }
  state <- new.env(parent = emptyenv())
  state$cleared <- FALSE
  state$has_result <- FALSE
  sql <- as.vector(statements)[1]
  res <- new("DatabricksSQLResult", connection = conn, sql = sql, state = state)
  conn@state$open <- c(conn@state$open, state)
  if (isTRUE(attr(statements, "unbound"))) {
    state$template <- "unbound"
    state$unbound <- TRUE
    state$rows <- 0
    state$pos <- 0
    state$rows_affected <- 0
    return(res)
  }
  ok <- FALSE
  on.exit(if (!ok) state$cleared <- TRUE)  # a statement that failed leaves no open result
  dbi_run(res, statements, call)
  ok <- TRUE
  res
}

# Runs a result's statements on the cluster; its rows stay there (a cursor).
dbi_run <- function(res, statements, call) {
  conn <- res@connection
  state <- res@state
  if (isTRUE(state$has_result)) dbi_clear_quiet(conn, state$id)
  empty <- isTRUE(attr(statements, "empty"))
  state$unbound <- FALSE
  if (empty && !returns_rows(statements[1])) {
    # No rows bound to a statement that changes things: nothing to run.
    out <- list(has_result = FALSE, rows_affected = 0)
  } else {
    out <- sql_request(conn, list(op = "send", sql = as.vector(statements), empty = empty), call = call)
  }
  state$id <- out$id
  state$has_result <- isTRUE(out$has_result)
  state$rows <- as.numeric(out$rows %||% 0)
  state$pos <- 0
  state$rows_affected <- as.numeric(out$rows_affected %||% 0)
  state$template <- out$df %||% data.frame()
  state$types <- as.character(unlist(out$types))
  if (state$has_result && !isTRUE(state$finalizer)) {
    state$finalizer <- TRUE
    reg.finalizer(state, function(s) if (!s$cleared && isTRUE(s$has_result)) dbi_clear_quiet(conn, s$id),
                  onexit = FALSE)
  }
  invisible(res)
}

# dbBind(): the statement of `res` with `params` bound, run again.
dbi_bind <- function(res, params, call) {
  check_result(res, call)
  statements <- bind_statements(res@connection, res@sql, params, call)
  dbi_run(res, statements, call)
  invisible(res)
}

check_bound <- function(res, call) {
  if (isTRUE(res@state$unbound)) {
    abort_dbrxr("The statement has `?` placeholders and no values yet.", "dbrxr_input_error",
                hints = "Give them with `DBI::dbBind(res, params)`.", call = call)
  }
}

#' @rdname databricks_sql
#' @export
setMethod("dbSendStatement", c("DatabricksSQLConnection", "character"),
          function(conn, statement, ..., params = NULL) {
  dbSendQuery(conn, statement, ..., params = params)
})

check_fetch_n <- function(n, call) {
  if (!is.numeric(n) || length(n) != 1L || is.na(n) || (n < 0 && n != -1) ||
      (is.finite(n) && n != round(n))) {
    abort_dbrxr("`n` must be a whole number >= 0, or -1 or Inf for all rows.", "dbrxr_input_error",
                problems = sprintf("It is %s.", paste(format(n), collapse = ", ")), call = call)
  }
}

dbi_clear_quiet <- function(con, id) {
  if (dbi_valid(con)) try(sql_request(con, list(op = "clear", id = id)), silent = TRUE)
}

check_result <- function(res, call) {
  if (res@state$cleared) {
    abort_dbrxr("This result has been cleared.", "dbrxr_input_error",
                hints = "Send the query again with `DBI::dbSendQuery()`.", call = call)
  }
}

#' @rdname databricks_sql
#' @param res A `DatabricksSQLResult`.
#' @export
setMethod("dbFetch", "DatabricksSQLResult", function(res, n = -1, ...) {
  call <- rlang::current_env()
  check_result(res, call)
  check_bound(res, call)
  check_fetch_n(n, call)
  st <- res@state
  if (!st$has_result) {
    cli::cli_warn("The statement returns no result set: nothing to fetch.", class = "dbrxr_warning")
    return(data.frame())
  }
  if (n == 0 || st$pos >= st$rows) return(st$template)
  out <- sql_request(res@connection, list(op = "fetch", id = st$id, n = if (is.finite(n)) n else -1),
                     call = call)
  st$pos <- as.numeric(out$pos)
  out$df %||% st$template
})

#' @rdname databricks_sql
#' @export
setMethod("dbClearResult", "DatabricksSQLResult", function(res, ...) {
  if (res@state$cleared) {
    cli::cli_warn("This result has already been cleared.", class = "dbrxr_warning")
    return(invisible(TRUE))
  }
  res@state$cleared <- TRUE
  con <- res@connection
  con@state$open <- Filter(function(s) !identical(s, res@state), con@state$open)
  if (res@state$has_result) dbi_clear_quiet(con, res@state$id)
  invisible(TRUE)
})

setMethod("dbHasCompleted", "DatabricksSQLResult", function(res, ...) {
  check_result(res, rlang::current_env())
  if (isTRUE(res@state$unbound)) return(FALSE)
  !res@state$has_result || res@state$pos >= res@state$rows
})

setMethod("dbGetStatement", "DatabricksSQLResult", function(res, ...) {
  check_result(res, rlang::current_env())
  res@sql
})

setMethod("dbGetRowCount", "DatabricksSQLResult", function(res, ...) {
  check_result(res, rlang::current_env())
  res@state$pos
})

setMethod("dbGetRowsAffected", "DatabricksSQLResult", function(res, ...) {
  check_result(res, rlang::current_env())
  if (isTRUE(res@state$unbound)) return(NA_real_)
  if (res@state$has_result) 0 else res@state$rows_affected
})

setMethod("dbColumnInfo", "DatabricksSQLResult", function(res, ...) {
  check_result(res, rlang::current_env())
  check_bound(res, rlang::current_env())
  tpl <- res@state$template
  data.frame(name = names(tpl), type = vapply(tpl, function(x) class(x)[1], ""),
             .sql_type = res@state$types %||% character(), stringsAsFactors = FALSE)
})

setMethod("dbBind", "DatabricksSQLResult", function(res, params, ...) {
  dbi_bind(res, params, rlang::current_env())
})

# Spark SQL has no transactions.
no_transactions <- function(call) {
  abort_dbrxr("Spark SQL has no transactions.", "dbrxr_unsupported_error",
              hints = "Statements take effect one by one (Delta tables commit each statement atomically).",
              call = call)
}
setMethod("dbBegin", "DatabricksSQLConnection", function(conn, ...) no_transactions(rlang::current_env()))
setMethod("dbCommit", "DatabricksSQLConnection", function(conn, ...) no_transactions(rlang::current_env()))
setMethod("dbRollback", "DatabricksSQLConnection", function(conn, ...) no_transactions(rlang::current_env()))

# ---- quoting ------------------------------------------------------------------------------

backtick <- function(x) {
  if (!length(x)) return(character())
  out <- paste0("`", gsub("`", "``", x, fixed = TRUE), "`")
  out[is.na(x)] <- NA_character_
  out
}

#' @rdname databricks_sql
#' @param x What to quote, or a table name (string, `DBI::Id()` or `DBI::SQL()`).
#' @export
setMethod("dbQuoteIdentifier", c("DatabricksSQLConnection", "character"), function(conn, x, ...) {
  # I("catalog.schema.table") (dbplyr) is a name written as it is.
  if (inherits(x, "AsIs")) return(DBI::SQL(unclass(x), names = names(x)))
  if (anyNA(x)) {
    abort_dbrxr("Identifiers cannot be NA.", "dbrxr_input_error", call = rlang::current_env())
  }
  DBI::SQL(backtick(x), names = names(x))
})

setMethod("dbQuoteIdentifier", c("DatabricksSQLConnection", "SQL"), function(conn, x, ...) x)

setMethod("dbQuoteIdentifier", c("DatabricksSQLConnection", "Id"), function(conn, x, ...) {
  parts <- id_parts(x)
  DBI::SQL(paste(backtick(parts), collapse = "."))
})

# The parts of an Id in catalog, schema, table order.
id_parts <- function(x) {
  nm <- x@name
  known <- c("catalog", "schema", "table")
  if (!is.null(names(nm)) && all(names(nm) %in% known)) nm <- nm[intersect(known, names(nm))]
  unname(nm)
}

setMethod("dbUnquoteIdentifier", c("DatabricksSQLConnection", "SQL"), function(conn, x, ...) {
  out <- lapply(as.character(x), function(s) {
    parts <- regmatches(s, gregexpr("`(?:[^`]|``)*`|[^.`]+", s, perl = TRUE))[[1]]
    parts <- ifelse(startsWith(parts, "`"), gsub("``", "`", substr(parts, 2, nchar(parts) - 1)), parts)
    keys <- utils::tail(c("catalog", "schema", "table"), length(parts))
    DBI::Id(stats::setNames(parts, keys))
  })
  names(out) <- names(x)
  out
})

setMethod("dbUnquoteIdentifier", c("DatabricksSQLConnection", "Id"), function(conn, x, ...) list(x))

setMethod("dbQuoteString", c("DatabricksSQLConnection", "character"), function(conn, x, ...) {
  # Spark SQL escapes with backslashes ('' is two adjacent literals, not a quote).
  if (!length(x)) return(DBI::SQL(character()))
  out <- gsub("\\", "\\\\", x, fixed = TRUE)
  out <- gsub("'", "\\'", out, fixed = TRUE)
  out <- gsub("\n", "\\n", out, fixed = TRUE)
  out <- gsub("\r", "\\r", out, fixed = TRUE)
  out <- paste0("'", enc2utf8(out), "'")
  out[is.na(x)] <- "NULL"
  DBI::SQL(out, names = names(x))
})

setMethod("dbQuoteString", c("DatabricksSQLConnection", "SQL"), function(conn, x, ...) x)

setMethod("dbQuoteLiteral", "DatabricksSQLConnection", function(conn, x, ...) {
  if (inherits(x, "SQL")) return(x)
  if (!length(x)) return(DBI::SQL(character()))
  if (is.factor(x)) x <- as.character(x)
  out <- if (inherits(x, "POSIXt")) {
    ifelse(is.na(x), "NULL", paste0("TIMESTAMP'", timestamp_text(x), "'"))
  } else if (inherits(x, "integer64")) {
    ifelse(is.na(x), "NULL", paste0("CAST(", as.character(x), " AS BIGINT)"))
  } else if (inherits(x, "Date")) {
    ifelse(is.na(x), "NULL", paste0("DATE'", format(x, "%Y-%m-%d"), "'"))
  } else if (inherits(x, "difftime")) {
    ifelse(is.na(x), "NULL", paste0("INTERVAL '", as.numeric(x, units = "secs"), "' SECOND"))
  } else if (is.list(x)) {
    vapply(x, function(r) if (is.null(r)) "NULL" else paste0("X'", paste(format(as.raw(r)), collapse = ""), "'"), "")
  } else if (is.logical(x)) {
    ifelse(is.na(x), "NULL", ifelse(x, "TRUE", "FALSE"))
  } else if (is.integer(x)) {
    ifelse(is.na(x), "NULL", as.character(x))
  } else if (is.numeric(x)) {
    # A number with an exponent is a DOUBLE literal in Spark SQL (17 digits:
    # the exact double); NaN and the infinities are Spark's double('...').
    x <- as.double(x)
    ifelse(is.na(x) & !is.nan(x), "NULL",
           ifelse(is.finite(x), vapply(x, format, "", digits = 17, scientific = TRUE, trim = TRUE),
                  paste0("double('", ifelse(is.nan(x), "NaN", ifelse(x > 0, "Infinity", "-Infinity")), "')")))
  } else if (is.character(x)) {
    return(dbQuoteString(conn, x))
  } else {
    abort_dbrxr(sprintf("Cannot quote a %s as a Spark SQL literal.", class(x)[1]), "dbrxr_input_error",
                call = rlang::current_env())
  }
  DBI::SQL(as.character(out), names = names(x))
})

# A POSIXct as Spark timestamp text in UTC, to the microsecond (rounded, not
# truncated as format()'s %OS6 is), with its zone so the session's does not apply.
timestamp_text <- function(x) {
  us <- round(as.numeric(as.POSIXct(x)) * 1e6)
  secs <- floor(us / 1e6)
  frac <- us - secs * 1e6
  paste0(format(as.POSIXct(secs, origin = "1970-01-01", tz = "UTC"), "%Y-%m-%d %H:%M:%S", tz = "UTC"),
         sprintf(".%06.0f", frac), "Z")
}

# ---- types --------------------------------------------------------------------------------

spark_type_of <- function(x) {
  if (is.data.frame(x)) return(vapply(x, spark_type_of, ""))
  if (inherits(x, "AsIs")) class(x) <- setdiff(class(x), "AsIs")
  if (inherits(x, "blob") || (is.list(x) && all(vapply(x, function(v) is.null(v) || is.raw(v), TRUE)))) {
    return("BINARY")
  }
  if (inherits(x, "POSIXt")) return("TIMESTAMP")
  if (inherits(x, "Date")) return("DATE")
  if (inherits(x, "difftime")) return("DOUBLE")
  if (is.factor(x) || is.character(x)) return("STRING")
  if (is.logical(x)) return("BOOLEAN")
  if (inherits(x, "integer64")) return("BIGINT")
  if (is.integer(x)) return("INT")
  if (is.numeric(x)) return("DOUBLE")
  abort_dbrxr(sprintf("A %s has no Spark SQL type.", class(x)[1]), "dbrxr_input_error",
              hints = "Columns can be logical, integer, double, character, factor, Date, POSIXct or blob.",
              call = NULL)
}

#' @rdname databricks_sql
#' @param dbObj A driver or connection.
#' @param obj An R object: its Spark SQL type.
#' @export
setMethod("dbDataType", "DatabricksSQLDriver", function(dbObj, obj, ...) spark_type_of(obj))

#' @rdname databricks_sql
#' @export
setMethod("dbDataType", "DatabricksSQLConnection", function(dbObj, obj, ...) spark_type_of(obj))

# ---- tables ---------------------------------------------------------------------------------

# A table name as the SQL text naming it.
table_sql <- function(con, name) {
  if (is(name, "SQL")) return(as.vector(name, "character"))
  if (is(name, "Id")) return(as.vector(dbQuoteIdentifier(con, name), "character"))
  check_text(name, arg = "name", null_ok = FALSE, call = NULL)
  if (grepl(name_pattern, name)) return(name)
  as.vector(dbQuoteIdentifier(con, name), "character")
}

# A table name as its parts (catalog, schema, table; as many as given).
table_parts <- function(con, name, call) {
  if (inherits(name, "Id")) return(id_parts(name))
  if (inherits(name, "SQL")) return(unname(dbUnquoteIdentifier(con, name)[[1]]@name))
  check_text(name, arg = "name", null_ok = FALSE, call = call)
  if (grepl(name_pattern, name)) strsplit(name, ".", fixed = TRUE)[[1]] else name
}

#' @rdname databricks_sql
#' @param catalog,schema Where to list tables: `NULL` lists the current schema.
#' @export
setMethod("dbListTables", "DatabricksSQLConnection", function(conn, ..., catalog = NULL, schema = NULL) {
  call <- rlang::current_env()
  check_text(catalog, call = call)
  check_text(schema, call = call)
  out <- sql_request(conn, list(op = "tables", catalog = catalog, schema = schema), call = call)
  as.character(unlist(out$name))
})

#' @rdname databricks_sql
#' @param name A table name.
#' @export
setMethod("dbListFields", c("DatabricksSQLConnection", "character"), function(conn, name, ...) {
  dbi_list_fields(conn, name)
})
setMethod("dbListFields", c("DatabricksSQLConnection", "Id"), function(conn, name, ...) {
  dbi_list_fields(conn, name)
})

dbi_list_fields <- function(conn, name, call = rlang::caller_env()) {
  out <- sql_request(conn, list(op = "columns", name = as.list(table_parts(conn, name, call))), call = call)
  as.character(unlist(out$name))
}

#' @rdname databricks_sql
#' @export
setMethod("dbExistsTable", c("DatabricksSQLConnection", "character"), function(conn, name, ...) {
  dbi_exists(conn, name)
})
setMethod("dbExistsTable", c("DatabricksSQLConnection", "Id"), function(conn, name, ...) {
  dbi_exists(conn, name)
})

dbi_exists <- function(conn, name, call = rlang::caller_env()) {
  isTRUE(sql_request(conn, list(op = "exists", name = as.list(table_parts(conn, name, call))), call = call))
}

#' @rdname databricks_sql
#' @param row.names See `DBI::sqlRownamesToColumn()`: `FALSE` (default) drops
#'   them, `TRUE` or a string keeps them in a column.
#' @param check.names Make the column names syntactic R names
#'   ([make.names()]), as `DBI::dbReadTable()` does by default.
#' @export
setMethod("dbReadTable", c("DatabricksSQLConnection", "character"),
          function(conn, name, ..., row.names = FALSE, check.names = TRUE) {
  dbi_read(conn, name, row.names, check.names)
})
setMethod("dbReadTable", c("DatabricksSQLConnection", "Id"),
          function(conn, name, ..., row.names = FALSE, check.names = TRUE) {
  dbi_read(conn, name, row.names, check.names)
})

dbi_read <- function(conn, name, row.names, check.names, call = rlang::caller_env()) {
  if (!is.null(row.names) && !((is.logical(row.names) || is.character(row.names)) && length(row.names) == 1L &&
                               !(is.character(row.names) && is.na(row.names)))) {
    abort_dbrxr("`row.names` must be NULL, TRUE, FALSE, NA or the name of a column.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(row.names)), call = call)
  }
  if (!isTRUE(check.names) && !isFALSE(check.names)) {
    abort_dbrxr("`check.names` must be TRUE or FALSE.", "dbrxr_input_error", call = call)
  }
  df <- dbGetQuery(conn, paste("SELECT * FROM", table_sql(conn, name)))
  df <- DBI::sqlColumnToRownames(df, row.names)
  if (isTRUE(check.names)) names(df) <- make.names(names(df), unique = TRUE)
  df
}

#' @rdname databricks_sql
#' @param value A data frame to write.
#' @param overwrite,append Replace the table, or add rows to it (created if
#'   missing); neither: the table must not exist. Written by
#'   [dbx_write_table()].
#' @param temporary Must be `FALSE`: Spark SQL has temporary views only.
#' @param field.types A named character vector of Spark SQL types for some
#'   columns (e.g. `c(id = "BIGINT")`): the table is created with them and
#'   the rows inserted with Spark's casts. Without it, types follow
#'   [dbx_write_table()]'s mapping.
#' @export
setMethod("dbWriteTable", c("DatabricksSQLConnection", "character", "data.frame"),
          function(conn, name, value, ..., row.names = FALSE, overwrite = FALSE, append = FALSE,
                   field.types = NULL, temporary = FALSE) {
  dbi_write(conn, name, value, row.names, overwrite, append, field.types, temporary)
})
setMethod("dbWriteTable", c("DatabricksSQLConnection", "Id", "data.frame"),
          function(conn, name, value, ..., row.names = FALSE, overwrite = FALSE, append = FALSE,
                   field.types = NULL, temporary = FALSE) {
  dbi_write(conn, name, value, row.names, overwrite, append, field.types, temporary)
})

dbi_write <- function(conn, name, value, row.names, overwrite, append, field.types, temporary,
                      call = rlang::caller_env()) {
  dbi_check(conn, call)
  check_flag(overwrite, null_ok = FALSE, call = call)
  check_flag(append, null_ok = FALSE, call = call)
  if (overwrite && append) {
    abort_dbrxr("`overwrite` and `append` cannot both be TRUE.", "dbrxr_input_error", call = call)
  }
  if (!isFALSE(temporary)) {
    abort_dbrxr("Temporary tables are not supported by Spark SQL (it has temporary views only).",
                "dbrxr_input_error", hints = "Write with `temporary = FALSE`.", call = call)
  }
  if (!is.null(field.types) && append) {
    abort_dbrxr("`field.types` cannot be given with `append = TRUE`: the table's types apply.",
                "dbrxr_input_error", call = call)
  }
  if (!is.null(field.types) && (!is.character(field.types) || is.null(names(field.types)) ||
                                 anyNA(field.types) || anyDuplicated(names(field.types)) ||
                                 !all(names(field.types) %in% names(value)))) {
    abort_dbrxr("`field.types` must be a named character vector of Spark SQL types for columns of `value`.",
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(field.types)), call = call)
  }
  if (!is.null(row.names) && !((is.logical(row.names) || is.character(row.names)) &&
                               length(row.names) == 1L && !(is.character(row.names) && is.na(row.names)))) {
    abort_dbrxr("`row.names` must be NULL, TRUE, FALSE, NA or the name of a column.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(row.names)), call = call)
  }
  parts <- table_parts(conn, name, call)
  full <- paste(parts, collapse = ".")
  if (length(parts) > 3L || !grepl(name_pattern, full)) {
    abort_dbrxr("dbWriteTable() takes table names of letters, digits and underscores.", "dbrxr_input_error",
                problems = sprintf("Got %s.", table_sql(conn, name)), call = call)
  }
  value <- DBI::sqlRownamesToColumn(value, row.names)
  # Binary columns, which the table writer does not take, go the same way.
  binary <- vapply(value, function(x) spark_type_of(x) == "BINARY", NA)
  if (!is.null(field.types) || any(binary)) {
    return(dbi_write_typed(conn, name, value, field.types %||% stats::setNames(character(), character()),
                           overwrite, append, call))
  }
  if (append) value <- dbi_append_shape(conn, full, value)
  mode <- if (overwrite) "overwrite" else if (append) "append" else "error"
  dbx_write_table(value, full, mode = mode, conn = conn@conn)
  pane_updated(conn)
  invisible(TRUE)
}

# dbWriteTable() with `field.types`: the table created with those types
# (the others by dbDataType()), then the rows appended with Spark's casts.
dbi_write_typed <- function(conn, name, value, field.types, overwrite, append, call) {
  exists <- dbExistsTable(conn, name)
  if (exists && !overwrite && !append) {
    abort_dbrxr(sprintf("Table %s already exists.", table_sql(conn, name)), "dbrxr_input_error",
                hints = "Use `overwrite = TRUE` to replace it or `append = TRUE` to add rows.", call = call)
  }
  if (exists && overwrite) dbExecute(conn, paste("DROP TABLE", table_sql(conn, name)))
  if (!exists || overwrite) {
    types <- spark_type_of(value)
    types[names(field.types)] <- field.types
    dbExecute(conn, paste0("CREATE TABLE ", table_sql(conn, name), " (",
                           paste(dbQuoteIdentifier(conn, names(types)), types, collapse = ", "), ")"))
  }
  # Always by INSERT: the table writer takes only types that widen exactly.
  dbi_insert(conn, name, value, call, writer = FALSE)
  pane_updated(conn)
  invisible(TRUE)
}

# Appending some of an existing table's columns, in any order (as DBI
# specifies): the others are NA of the table's types, in the table's order.
# Columns the table lacks are left for dbx_write_table()'s schema check.
dbi_append_shape <- function(conn, full, value) {
  if (!dbExistsTable(conn, DBI::Id(stats::setNames(strsplit(full, ".", fixed = TRUE)[[1]],
                                                    utils::tail(c("catalog", "schema", "table"),
                                                                length(strsplit(full, ".", fixed = TRUE)[[1]])))))) {
    return(value)
  }
  proto <- dbGetQuery(conn, paste("SELECT * FROM", full, "LIMIT 0"))
  if (!all(names(value) %in% names(proto)) || identical(names(value), names(proto))) return(value)
  out <- lapply(names(proto), function(col) {
    if (col %in% names(value)) value[[col]] else proto[[col]][rep(NA_integer_, nrow(value))]
  })
  names(out) <- names(proto)
  as.data.frame(out, stringsAsFactors = FALSE, optional = TRUE)
}

#' @rdname databricks_sql
#' @param fail_if_missing If `FALSE`, removing a table that does not exist is not an error.
#' @export
setMethod("dbRemoveTable", c("DatabricksSQLConnection", "character"),
          function(conn, name, ..., temporary = FALSE, fail_if_missing = TRUE) {
  dbi_remove(conn, name, fail_if_missing)
})
setMethod("dbRemoveTable", c("DatabricksSQLConnection", "Id"),
          function(conn, name, ..., temporary = FALSE, fail_if_missing = TRUE) {
  dbi_remove(conn, name, fail_if_missing)
})

dbi_remove <- function(conn, name, fail_if_missing, call = rlang::caller_env()) {
  sql <- paste0("DROP TABLE ", if (!isTRUE(fail_if_missing)) "IF EXISTS ", table_sql(conn, name))
  dbExecute(conn, sql)
  pane_updated(conn)
  invisible(TRUE)
}

#' DBI methods of the Databricks SQL backend
#'
#' The other DBI generics that [databricks_sql()] connections, results and
#' the driver implement, with the meaning DBI gives them (see each generic's
#' page in DBI, e.g. [DBI::dbBegin()]). Transactions: Spark SQL has none, so
#' `dbBegin()`, `dbCommit()` and `dbRollback()` are a `dbrxr_unsupported_error`;
#' `dbBind()`: values for a result's `?` placeholders (see [databricks_sql()]),
#' which runs the statement again.
#'
#' @name databricks_sql-methods
#' @keywords internal
#' @aliases dbBegin,DatabricksSQLConnection-method
#' @aliases dbBind,DatabricksSQLResult-method
#' @aliases dbColumnInfo,DatabricksSQLResult-method
#' @aliases dbCommit,DatabricksSQLConnection-method
#' @aliases dbDisconnect,DatabricksSQLConnection-method
#' @aliases dbExistsTable,DatabricksSQLConnection,Id-method
#' @aliases dbGetInfo,DatabricksSQLConnection-method
#' @aliases dbGetInfo,DatabricksSQLDriver-method
#' @aliases dbGetRowCount,DatabricksSQLResult-method
#' @aliases dbGetRowsAffected,DatabricksSQLResult-method
#' @aliases dbGetStatement,DatabricksSQLResult-method
#' @aliases dbHasCompleted,DatabricksSQLResult-method
#' @aliases dbIsValid,DatabricksSQLConnection-method
#' @aliases dbIsValid,DatabricksSQLDriver-method
#' @aliases dbIsValid,DatabricksSQLResult-method
#' @aliases dbListFields,DatabricksSQLConnection,Id-method
#' @aliases dbQuoteIdentifier,DatabricksSQLConnection,Id-method
#' @aliases dbQuoteIdentifier,DatabricksSQLConnection,SQL-method
#' @aliases dbQuoteLiteral,DatabricksSQLConnection-method
#' @aliases dbQuoteString,DatabricksSQLConnection,SQL-method
#' @aliases dbQuoteString,DatabricksSQLConnection,character-method
#' @aliases dbReadTable,DatabricksSQLConnection,Id-method
#' @aliases dbRemoveTable,DatabricksSQLConnection,Id-method
#' @aliases dbRollback,DatabricksSQLConnection-method
#' @aliases dbUnquoteIdentifier,DatabricksSQLConnection,Id-method
#' @aliases dbUnquoteIdentifier,DatabricksSQLConnection,SQL-method
#' @aliases dbWriteTable,DatabricksSQLConnection,Id,data.frame-method
#' @aliases show,DatabricksSQLConnection-method
#' @aliases show,DatabricksSQLDriver-method
#' @aliases show,DatabricksSQLResult-method
NULL
