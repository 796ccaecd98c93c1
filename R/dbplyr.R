# dbplyr backend for DatabricksSQLConnection: a Spark SQL dialect. dbplyr
# 2.3 has no Spark backend, so this builds on its Hive one (Spark SQL's
# ancestor: backticks, LIMIT, Hive functions) and adds Spark's own functions.
# Methods are registered when dbplyr is loaded (NAMESPACE S3method(dbplyr::...)).

#' @exportS3Method dbplyr::dbplyr_edition
dbplyr_edition.DatabricksSQLConnection <- function(con) 2L

#' @exportS3Method dbplyr::db_connection_describe
db_connection_describe.DatabricksSQLConnection <- function(con, ...) {
  info <- con@conn$info
  sprintf("Spark SQL on Databricks %s, cluster %s", info$host %||% "?", info$cluster_id %||% "?")
}

#' @exportS3Method dbplyr::sql_translation
sql_translation.DatabricksSQLConnection <- function(con) {
  hive <- dbplyr::sql_translation(dbplyr::simulate_hive())
  sql_expr <- dbplyr::sql_expr
  dbplyr::sql_variant(
    dbplyr::sql_translator(
      .parent = hive$scalar,
      as.numeric = dbplyr::sql_cast("DOUBLE"),
      as.double = dbplyr::sql_cast("DOUBLE"),
      as.integer = dbplyr::sql_cast("INT"),
      as.integer64 = dbplyr::sql_cast("BIGINT"),
      as.character = dbplyr::sql_cast("STRING"),
      as.logical = dbplyr::sql_cast("BOOLEAN"),
      as.Date = dbplyr::sql_cast("DATE"),
      as.POSIXct = dbplyr::sql_cast("TIMESTAMP"),
      nchar = dbplyr::sql_prefix("LENGTH", 1),
      str_length = dbplyr::sql_prefix("LENGTH", 1),
      tolower = dbplyr::sql_prefix("LOWER", 1),
      toupper = dbplyr::sql_prefix("UPPER", 1),
      str_to_lower = dbplyr::sql_prefix("LOWER", 1),
      str_to_upper = dbplyr::sql_prefix("UPPER", 1),
      str_detect = function(string, pattern, negate = FALSE) {
        if (isTRUE(negate)) sql_expr(!(!!string %RLIKE% !!pattern)) else sql_expr(!!string %RLIKE% !!pattern)
      },
      grepl = function(pattern, x, ...) sql_expr(!!x %RLIKE% !!pattern),
      str_starts = function(string, pattern) sql_expr(startswith(!!string, !!pattern)),
      str_ends = function(string, pattern) sql_expr(endswith(!!string, !!pattern)),
      year = dbplyr::sql_prefix("YEAR", 1),
      month = dbplyr::sql_prefix("MONTH", 1),
      day = dbplyr::sql_prefix("DAY", 1),
      mday = dbplyr::sql_prefix("DAYOFMONTH", 1),
      yday = dbplyr::sql_prefix("DAYOFYEAR", 1),
      hour = dbplyr::sql_prefix("HOUR", 1),
      minute = dbplyr::sql_prefix("MINUTE", 1),
      second = dbplyr::sql_prefix("SECOND", 1),
      today = function() dbplyr::sql("CURRENT_DATE()"),
      now = function() dbplyr::sql("CURRENT_TIMESTAMP()"),
      log = function(x, base = exp(1)) {
        if (isTRUE(all.equal(base, exp(1)))) sql_expr(ln(!!x)) else sql_expr(log(!!base, !!x))
      },
      log2 = dbplyr::sql_prefix("LOG2", 1),
      log10 = dbplyr::sql_prefix("LOG10", 1),
      pmin = dbplyr::sql_prefix("LEAST"),
      pmax = dbplyr::sql_prefix("GREATEST"),
      is.nan = dbplyr::sql_prefix("ISNAN", 1),
      `%/%` = function(x, y) sql_expr(!!x %DIV% !!y)
    ),
    dbplyr::sql_translator(
      .parent = hive$aggregate,
      median = function(x, na.rm = FALSE) sql_expr(percentile(!!x, 0.5)),
      any = dbplyr::sql_aggregate("BOOL_OR", "any"),
      all = dbplyr::sql_aggregate("BOOL_AND", "all")
    ),
    dbplyr::sql_translator(.parent = hive$window)
  )
}

#' @exportS3Method dbplyr::supports_window_clause
supports_window_clause.DatabricksSQLConnection <- function(con) TRUE

# No ANALYZE after compute(): it fails on the temporary views compute()
# makes, and Spark computes the statistics it needs itself.
#' @exportS3Method dbplyr::sql_table_analyze
sql_table_analyze.DatabricksSQLConnection <- function(con, table, ...) NULL

# compute(): a temporary view (Spark SQL has no temporary tables), or a table.
#' @exportS3Method dbplyr::sql_query_save
sql_query_save.DatabricksSQLConnection <- function(con, sql, name, temporary = TRUE, ...) {
  dbplyr::build_sql(
    if (temporary) dbplyr::sql("CREATE OR REPLACE TEMPORARY VIEW ") else dbplyr::sql("CREATE TABLE "),
    dbplyr::as.sql(name, con = con), " AS ", sql, con = con)
}

# tbl(con, I("catalog.schema.table")): a table name used as written (what
# dbplyr 2.4 and later do with I(); dbplyr 2.3 would quote it as one name).
#' @exportS3Method dbplyr::as.sql
as.sql.AsIs <- function(x, con) dbplyr::ident_q(unclass(x))
