# Values through the DBI backend are exact, or a dbrxr_precision_warning
# says which were not (issue 36): NaN and the infinities quoted, bigint as
# dbConnect()'s `bigint` says, decimals beyond a double's digits.

test_that("dbQuoteLiteral() quotes NaN, Inf and -Inf as Spark doubles, and they round-trip", {
  con <- sql_con()
  x <- c(NaN, Inf, -Inf, NA, 0.1, -1e-300)
  q <- DBI::dbQuoteLiteral(con, x)
  expect_identical(as.character(q)[1:4], c("double('NaN')", "double('Infinity')", "double('-Infinity')", "NULL"))
  got <- DBI::dbGetQuery(con, paste("SELECT", paste0(q, " AS v", seq_along(x), collapse = ", ")))
  expect_identical(unname(unlist(got)), x)
  # A filter on NaN is a filter on NaN, not on NULL.
  n <- DBI::dbGetQuery(con, paste("SELECT COUNT(*) AS n FROM VALUES (double('NaN')), (1.0), (NULL) AS t(v) WHERE v =",
                                  DBI::dbQuoteLiteral(con, NaN)))$n
  expect_identical(as.character(n), "1")
})

test_that("dbConnect(bigint =) maps bigint to integer64, integer, numeric or character; precision losses warn", {
  skip_if_not_installed("bit64")
  conn <- sql_conn()
  sql <- "SELECT CAST(9007199254740993 AS BIGINT) AS big, CAST(-42 AS BIGINT) AS small"
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  withr::defer(DBI::dbDisconnect(con))
  expect_identical(con@state$bigint, "integer64")  # the default with bit64
  got <- expect_no_warning(DBI::dbGetQuery(con, sql))
  expect_s3_class(got$big, "integer64")
  expect_identical(as.character(got$big), "9007199254740993")
  each <- function(bigint) {
    c2 <- DBI::dbConnect(databricks_sql(), conn = conn, bigint = bigint)
    withr::defer(DBI::dbDisconnect(c2))
    DBI::dbGetQuery(c2, sql)
  }
  chr <- expect_no_warning(each("character"))
  expect_identical(chr, data.frame(big = "9007199254740993", small = "-42"))
  expect_warning(num <- each("numeric"), class = "dbrxr_precision_warning")
  expect_identical(num, data.frame(big = 9007199254740992, small = -42))
  # bigint = "integer" was asked for: NA beyond its range, said by a message
  # (DBItest's connect_bigint_integer wants no warning).
  expect_message(int <- expect_no_warning(each("integer")), class = "dbrxr_precision_message")
  expect_identical(int, data.frame(big = NA_integer_, small = -42L))
  # Values that fit warn about nothing.
  c3 <- DBI::dbConnect(databricks_sql(), conn = conn, bigint = "numeric")
  withr::defer(DBI::dbDisconnect(c3))
  expect_identical(expect_no_warning(DBI::dbGetQuery(c3, "SELECT 10000000000 AS a"))$a, 1e10)
  expect_error(DBI::dbConnect(databricks_sql(), conn = conn, bigint = "int"), class = "dbrxr_input_error")
})

test_that("a decimal a double cannot hold warns (DBI and dbx_read_table()); one it can does not", {
  con <- sql_con()
  sql <- "SELECT CAST('1.123456789012345678' AS DECIMAL(38,18)) AS d, CAST(1.5 AS DECIMAL(38,18)) AS e"
  expect_warning(got <- DBI::dbGetQuery(con, sql), class = "dbrxr_precision_warning")
  expect_identical(got, data.frame(d = 1.123456789012345678, e = 1.5))
  expect_no_warning(DBI::dbGetQuery(con, "SELECT CAST(1.5 AS DECIMAL(38,18)) AS e, CAST(0.1 AS DECIMAL(10,2)) AS f"))
  expect_warning(dbx_read_table(dbx_sql(sql), conn = con@conn), class = "dbrxr_precision_warning")
})

test_that("integer64 values are quoted and written exactly", {
  skip_if_not_installed("bit64")
  con <- sql_con()
  x <- bit64::as.integer64(c("9007199254740993", NA, "-9223372036854775807"))
  q <- DBI::dbQuoteLiteral(con, x)
  expect_identical(as.character(q), c("CAST(9007199254740993 AS BIGINT)", "NULL", "CAST(-9223372036854775807 AS BIGINT)"))
  got <- DBI::dbGetQuery(con, paste("SELECT", paste0(q, " AS v", 1:3, collapse = ", ")))
  expect_identical(as.character(unlist(lapply(got, as.character))), as.character(x))
  expect_identical(DBI::dbDataType(con, x), "BIGINT")
})
