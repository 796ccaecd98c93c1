# Parameter binding (`?` placeholders, `params =`, dbBind()) and
# dbAppendTable() / dbWriteTable(field.types =) on the local cluster's Spark
# SQL (issue 36: dbAppendTable() always failed, "Parameters are not supported").

test_that("placeholders are found outside literals, quoted names and comments", {
  sql <- "SELECT '?', \"it\\'s ?\", `a?b`, ? -- why?\n, /* ? */ ?"
  pos <- sql_placeholders(sql)
  expect_identical(substring(sql, pos, pos), c("?", "?"))
  expect_length(pos, 2)
  expect_length(sql_placeholders("SELECT 1"), 0)
})

test_that("params = binds exact values, one statement per row; dbBind() runs it again", {
  con <- sql_con()
  vals <- c("it's", NA, "back\\slash ?", "line\nbreak", "'); DROP TABLE x; --")
  got <- DBI::dbGetQuery(con, "SELECT ? AS s, ? AS d, ? AS i, ? AS b",
                         params = list(vals, c(0.1, NaN, -Inf, NA, 1e300), c(1L, NA, 3L, 4L, 5L),
                                       c(TRUE, NA, FALSE, TRUE, FALSE)))
  expect_identical(got, data.frame(s = vals, d = c(0.1, NaN, -Inf, NA, 1e300), i = c(1L, NA, 3L, 4L, 5L),
                                   b = c(TRUE, NA, FALSE, TRUE, FALSE)))
  when <- as.POSIXct(c("2024-01-02 03:04:05.123456", NA), tz = "UTC")
  got <- DBI::dbGetQuery(con, "SELECT ? AS t, ? AS d", params = list(when, as.Date(c("2024-02-29", NA))))
  expect_identical(format(got$t, "%Y-%m-%d %H:%M:%OS6", tz = "UTC"), format(when, "%Y-%m-%d %H:%M:%OS6", tz = "UTC"))
  expect_identical(got$d, as.Date(c("2024-02-29", NA)))
  res <- DBI::dbSendQuery(con, "SELECT ? + 1 AS a")
  expect_error(DBI::dbFetch(res), class = "dbrxr_input_error")  # not bound yet
  DBI::dbBind(res, list(1:3))
  expect_identical(DBI::dbFetch(res)$a, 2:4)
  DBI::dbBind(res, list(10L))
  expect_identical(DBI::dbFetch(res)$a, 11L)
  DBI::dbBind(res, list(integer()))
  expect_identical(DBI::dbFetch(res), data.frame(a = integer()))
  DBI::dbClearResult(res)
  # Wrong counts and kinds are input errors before anything runs.
  expect_error(DBI::dbGetQuery(con, "SELECT ?", params = list(1, 2)), class = "dbrxr_input_error")
  expect_error(DBI::dbGetQuery(con, "SELECT ?, ?", params = list(1:2, 1:3)), class = "dbrxr_input_error")
  expect_error(DBI::dbGetQuery(con, "SELECT ?", params = list(a = 1)), class = "dbrxr_input_error")
  expect_error(DBI::dbGetQuery(con, "SELECT ?", params = list(list(1))), class = "dbrxr_input_error")
  # A failed bound statement leaves no open result behind (no "previous result set" warning next).
  expect_error(DBI::dbSendQuery(con, "SELECT nope + ?", params = list(1)), class = "dbrxr_sql_error")
  expect_no_warning(DBI::dbGetQuery(con, "SELECT 1 AS a", n = 1))
})

test_that("dbAppendTable() appends (all columns, some, shuffled; exact values); dbExecute() binds", {
  con <- sql_con()
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dbib")
  id <- DBI::Id(catalog = "main", schema = "dbib", table = "t")
  DBI::dbRemoveTable(con, id, fail_if_missing = FALSE)
  df <- data.frame(a = c(1L, NA), s = c("it's \\ ok", NA), x = c(0.1, NaN), d = as.Date(c("2024-02-29", NA)),
                   stringsAsFactors = FALSE)
  DBI::dbCreateTable(con, id, df)
  expect_identical(DBI::dbAppendTable(con, id, df), 2)
  expect_identical(DBI::dbAppendTable(con, id, df[c("x", "a")]), 2)
  got <- DBI::dbGetQuery(con, "SELECT * FROM main.dbib.t")
  expect_identical(nrow(got), 4L)
  expect_identical(got$x[order(got$a, got$s)], c(0.1, 0.1, NaN, NaN))
  expect_identical(sort(got$s, na.last = TRUE), c("it's \\ ok", NA, NA, NA))
  # Every column named: the local catalog (Spark 3.5) refuses an INSERT that
  # leaves some out, which Delta fills with NULL (README, "What it emulates").
  expect_identical(DBI::dbExecute(con, "INSERT INTO main.dbib.t (a, s, x, d) VALUES (?, NULL, NULL, NULL)",
                                  params = list(5:7)), 3)
  expect_identical(as.character(DBI::dbGetQuery(con, "SELECT COUNT(*) AS n FROM main.dbib.t")$n), "7")
  # A missing table, a non-data-frame and row names are errors; nothing is written.
  expect_error(DBI::dbAppendTable(con, DBI::Id(catalog = "main", schema = "dbib", table = "nope"), df),
               class = "dbrxr_table_not_found_error")
  expect_error(DBI::dbAppendTable(con, id, unclass(df)), class = "dbrxr_input_error")
  expect_error(DBI::dbAppendTable(con, id, df, row.names = TRUE), class = "dbrxr_input_error")
  expect_error(DBI::dbAppendTable(con, id, data.frame(nope = 1)), class = "dbrxr_sql_error")
  expect_identical(as.character(DBI::dbGetQuery(con, "SELECT COUNT(*) AS n FROM main.dbib.t")$n), "7")
  DBI::dbRemoveTable(con, id)
})

test_that("dbWriteTable(field.types =) creates those types and keeps values exact", {
  skip_if_not_installed("bit64")
  con <- sql_con()
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dbib")
  id <- DBI::Id(catalog = "main", schema = "dbib", table = "typed")
  DBI::dbWriteTable(con, id, data.frame(a = c(-1e14, 1e15), b = c("x", "y")), field.types = c(a = "BIGINT"),
                    overwrite = TRUE)
  got <- DBI::dbReadTable(con, id)
  expect_s3_class(got$a, "integer64")
  expect_identical(sort(as.character(got$a)), c("-100000000000000", "1000000000000000"))
  expect_error(DBI::dbWriteTable(con, id, data.frame(a = 1), field.types = c(a = "BIGINT")), class = "dbrxr_input_error")
  expect_error(DBI::dbWriteTable(con, id, data.frame(a = 1), field.types = c(z = "BIGINT"), overwrite = TRUE),
               class = "dbrxr_input_error")
  DBI::dbRemoveTable(con, id)
})
