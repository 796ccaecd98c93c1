# Parameter binding and appends for the DBI backend (R/dbi.R). Spark SQL
# statements take positional `?` placeholders; a bound statement is the
# statement with each placeholder replaced by the exact Spark SQL literal of
# its value (dbQuoteLiteral()'s quoting, NULLs typed), one statement per row
# of parameters, all sent in one request. Values never reach the statement
# unquoted.

# Character positions of the `?` placeholders of `sql`: those outside string
# literals ('...' and "...", backslash escapes), quoted identifiers (`...`)
# and comments (-- and /* */).
sql_placeholders <- function(sql) {
  chars <- strsplit(sql, "", fixed = TRUE)[[1]]
  n <- length(chars)
  pos <- integer()
  i <- 1L
  while (i <= n) {
    ch <- chars[i]
    if (ch == "'" || ch == "\"") {
      i <- i + 1L
      while (i <= n && chars[i] != ch) i <- i + if (chars[i] == "\\") 2L else 1L
    } else if (ch == "`") {
      i <- i + 1L
      while (i <= n && chars[i] != "`") i <- i + 1L
    } else if (ch == "-" && i < n && chars[i + 1L] == "-") {
      while (i <= n && chars[i] != "\n") i <- i + 1L
    } else if (ch == "/" && i < n && chars[i + 1L] == "*") {
      i <- i + 2L
      while (i < n && !(chars[i] == "*" && chars[i + 1L] == "/")) i <- i + 1L
      i <- i + 1L
    } else if (ch == "?") {
      pos <- c(pos, i)
    }
    i <- i + 1L
  }
  pos
}

# The Spark SQL literal of each value of a bound column: dbQuoteLiteral()'s,
# with NA as a NULL of the column's type (so every row's statement has the
# same result types).
bind_literal <- function(conn, x, call) {
  if (inherits(x, "POSIXlt")) x <- as.POSIXct(x)
  type <- tryCatch(spark_type_of(x), dbrxr_error = function(e) {
    abort_dbrxr(sprintf("A %s cannot be bound as a parameter.", class(x)[1]), "dbrxr_input_error",
                hints = "Parameters can be logical, integer, integer64, double, character, factor, Date, POSIXct or blob.",
                call = call)
  })
  out <- as.character(dbQuoteLiteral(conn, x))
  out[out == "NULL"] <- sprintf("CAST(NULL AS %s)", type)
  out
}

# Checks `params` against the statement's placeholders; returns the
# parameters as a list of equally long columns.
check_params <- function(params, n_placeholders, call) {
  if (is.data.frame(params)) params <- as.list(params)
  # A vector: one value per placeholder (as DBI's examples bind).
  if (is.atomic(params) && is.null(dim(params))) {
    if (inherits(params, "POSIXlt")) params <- as.POSIXct(params)
    params <- stats::setNames(lapply(seq_along(params), function(k) unname(params[k])), names(params))
  }
  if (!is.list(params)) {
    abort_dbrxr("`params` must be a list (or data frame) of values, one element per `?`.",
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(params)), call = call)
  }
  if (!is.null(names(params)) && any(nzchar(names(params)))) {
    abort_dbrxr("Named parameters are not supported: Spark SQL statements take positional `?` placeholders.",
                "dbrxr_input_error", hints = "Pass an unnamed list, in the order of the `?`s.", call = call)
  }
  params <- lapply(params, function(p) if (inherits(p, "POSIXlt")) as.POSIXct(p) else p)
  if (!length(params)) {
    abort_dbrxr("`params` is empty: there is nothing to bind.", "dbrxr_input_error",
                hints = "Give one value per `?`, or run the statement without `params`.", call = call)
  }
  if (length(params) != n_placeholders) {
    abort_dbrxr(sprintf("The statement has %d placeholder%s but %d parameter%s %s given.",
                        n_placeholders, if (n_placeholders == 1) "" else "s",
                        length(params), if (length(params) == 1) "" else "s",
                        if (length(params) == 1) "was" else "were"),
                "dbrxr_input_error", call = call)
  }
  ok <- vapply(params, function(p) {
    (is.atomic(p) && is.null(dim(p))) || inherits(p, "blob") ||
      (is.list(p) && all(vapply(p, function(v) is.null(v) || is.raw(v), NA)))
  }, NA)
  if (!all(ok)) {
    abort_dbrxr("Each parameter must be a vector (or a blob).", "dbrxr_input_error",
                problems = sprintf("Parameter %d is %s.", which(!ok)[1], obj_type(params[[which(!ok)[1]]])),
                call = call)
  }
  lens <- unique(lengths(params))
  if (length(lens) > 1L) {
    abort_dbrxr("All parameters must have the same length (one value per row).", "dbrxr_input_error",
                problems = sprintf("Their lengths are %s.", paste(lengths(params), collapse = ", ")),
                call = call)
  }
  factors <- vapply(params, is.factor, NA)
  if (any(factors)) {
    cli::cli_warn("Factor parameters are bound as text (their labels).", class = "dbrxr_warning")
    params[factors] <- lapply(params[factors], as.character)
  }
  unname(params)
}

# The statements of `sql` with `params` bound: one per row of parameters.
# Zero rows: the statement with typed NULLs, marked `empty` (its result
# types are wanted, its rows are not).
bind_statements <- function(conn, sql, params, call) {
  pos <- sql_placeholders(sql)
  params <- check_params(params, length(pos), call)
  if (!length(pos)) return(structure(sql, empty = FALSE))
  rows <- length(params[[1]])
  empty <- rows == 0L
  lits <- lapply(params, function(p) {
    if (empty) p <- p[NA_integer_]
    bind_literal(conn, p, call)
  })
  pieces <- substring(sql, c(1L, pos + 1L), c(pos - 1L, nchar(sql)))
  out <- pieces[[1]]
  for (k in seq_along(pos)) out <- paste0(out, lits[[k]], pieces[[k + 1L]])
  structure(out, empty = empty)
}

# Whether a statement returns rows (so a zero-row binding can still ask for
# its result types without changing anything).
returns_rows <- function(sql) {
  grepl("^\\s*(\\(\\s*)*(SELECT|WITH|VALUES|SHOW|DESCRIBE|DESC|EXPLAIN|FROM|TABLE)\\b", sql,
        ignore.case = TRUE, perl = TRUE)
}

# ---- appends ------------------------------------------------------------------------------

#' @rdname databricks_sql
#' @export
setMethod("dbAppendTable", "DatabricksSQLConnection", function(conn, name, value, ..., row.names = NULL) {
  call <- rlang::current_env()
  dbi_check(conn, call)
  if (!is.null(row.names)) {
    abort_dbrxr("dbAppendTable() takes no row names: `row.names` must be NULL.", "dbrxr_input_error",
                hints = "Turn them into a column with `DBI::sqlRownamesToColumn()` first.", call = call)
  }
  if (!is.data.frame(value)) {
    abort_dbrxr("`value` must be a data frame.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(value)), call = call)
  }
  if (!(is(name, "Id") || is(name, "SQL") || (is.character(name) && length(name) == 1L && !is.na(name)))) {
    abort_dbrxr("`name` must be one table name (a string, `DBI::Id()` or `DBI::SQL()`).", "dbrxr_input_error",
                call = call)
  }
  if (!dbExistsTable(conn, name)) {
    abort_dbrxr(sprintf("Table %s does not exist.", table_sql(conn, name)),
                c("dbrxr_table_not_found_error", "dbrxr_input_error"),
                hints = "Create it first with `DBI::dbCreateTable()` or `DBI::dbWriteTable()`.", call = call)
  }
  factors <- names(value)[vapply(value, is.factor, NA)]
  if (length(factors)) {
    cli::cli_warn("Factor column{?s} {factors} {?is/are} appended as text (their labels).",
                  class = "dbrxr_warning")
  }
  n <- dbi_insert(conn, name, value, call)
  pane_updated(conn)
  n
})

# Rows appended by one INSERT statement of exact literals: atomic (one Spark
# job), with Spark's own casts to the table's column types. Larger frames go
# through the table writer (Arrow, one atomic append) when it takes their
# columns, as an INSERT of many thousand literals is slow to parse.
dbi_insert_max_rows <- 1000L

dbi_insert <- function(conn, name, value, call, writer = TRUE) {
  if (!nrow(value) || !ncol(value)) return(0)
  writable <- writer && !any(vapply(value, function(x) spark_type_of(x) == "BINARY", NA))
  if (nrow(value) > dbi_insert_max_rows && writable) {
    parts <- table_parts(conn, name, call)
    full <- paste(parts, collapse = ".")
    if (length(parts) <= 3L && grepl(name_pattern, full)) {
      dbx_write_table(dbi_append_shape(conn, full, value), full, mode = "append", conn = conn@conn)
      return(as.numeric(nrow(value)))
    }
  }
  lits <- lapply(value, bind_literal, conn = conn, call = call)
  # The table's other columns get NULL, named: Spark (3.5) refuses an INSERT
  # that leaves a column of a catalog's table out.
  proto <- names(sql_request(conn, list(op = "query", sql = paste("SELECT * FROM", table_sql(conn, name), "LIMIT 0")),
                             call = call)$df)
  for (col in proto[!tolower(proto) %in% tolower(names(value))]) lits[[col]] <- rep("NULL", nrow(value))
  cols <- paste(dbQuoteIdentifier(conn, names(lits)), collapse = ", ")
  rows <- do.call(paste, c(unname(lits), sep = ", "))
  sql <- paste0("INSERT INTO ", table_sql(conn, name), " (", cols, ") VALUES ",
                paste0("(", rows, ")", collapse = ", "))
  sql_request(conn, list(op = "execute", sql = sql), call = call)
  as.numeric(nrow(value))
}
