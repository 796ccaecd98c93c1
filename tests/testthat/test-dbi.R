# The DBI backend and dbx_exec(language = "sql") on the local cluster's Spark.

test_that("dbx_exec(language = 'sql') returns the service's table result", {
  conn <- sql_conn()
  res <- dbrxr:::exec_command(conn, "SELECT 1 AS a, 'x' AS b, CAST(NULL AS DOUBLE) AS c, DATE'2024-02-29' AS d",
                              language = "sql")
  expect_identical(res$resultType, "table")
  expect_identical(res$data, list(list(1, "x", NULL, "2024-02-29")))
  expect_identical(vapply(res$schema, `[[`, "", "name"), c("a", "b", "c", "d"))
  expect_false(res$truncated)
  df <- dbx_exec("SELECT id, id * 2 AS twice FROM range(3)", conn, language = "sql")
  expect_identical(df, data.frame(id = c(0, 1, 2), twice = c(0, 2, 4)))
  # Several statements: the last one's rows. DDL and three-level names.
  df <- dbx_exec("CREATE SCHEMA IF NOT EXISTS main.sqlx; SHOW SCHEMAS IN main LIKE 'sqlx'", conn, language = "sql")
  expect_identical(df[[1]], "sqlx")
  # Over 10,000 rows: cut, with truncated = TRUE (and dbx_exec() warns).
  expect_warning(df <- dbx_exec("SELECT id FROM range(10005)", conn, language = "sql"),
                 class = "dbrxr_truncated_warning")
  expect_identical(nrow(df), 10000L)
})

test_that("Spark SQL errors in dbx_exec() keep their class, message and position", {
  conn <- sql_conn()
  e <- expect_error(dbx_exec("SELEC 1", conn, language = "sql"), class = "dbrxr_remote_python_error")
  # The DBI backend's class and fields, as dbGetQuery() gives them.
  expect_s3_class(e, "dbrxr_sql_error")
  expect_identical(e$error_class, "PARSE_SYNTAX_ERROR")
  expect_identical(e$sqlstate, "42601")
  expect_identical(c(e$line, e$pos), c(1, 0))
  expect_identical(e$statement, "SELEC 1")
  expect_match(e$summary, "[PARSE_SYNTAX_ERROR] Syntax error at or near 'SELEC'", fixed = TRUE)
  expect_match(e$summary, "(line 1, pos 0)", fixed = TRUE)
  expect_match(e$cause, "== SQL ==", fixed = TRUE)
  e <- expect_error(dbx_exec("SELECT nope FROM range(1)", conn, language = "sql"),
                    class = "dbrxr_remote_python_error")
  expect_match(e$summary, "UNRESOLVED_COLUMN", fixed = TRUE)
  expect_match(e$summary, "(line 1, pos 7)", fixed = TRUE)
})

test_that("dbGetQuery, dbExecute, dbSendQuery/dbFetch in chunks", {
  skip_if_not_installed("bit64")
  con <- sql_con()
  expect_identical(DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dbi"), 0)
  DBI::dbExecute(con, "DROP TABLE IF EXISTS main.dbi.t")
  DBI::dbExecute(con, "CREATE TABLE main.dbi.t (i INT, s STRING, d DATE, b BOOLEAN, x BIGINT, ts TIMESTAMP)")
  n <- DBI::dbExecute(con, paste("INSERT INTO main.dbi.t VALUES (1, 'a', DATE'2024-01-02', true, 10, TIMESTAMP'2024-01-02 03:04:05'),",
                                 "(2, NULL, NULL, false, NULL, NULL), (3, 'it\\'s', DATE'1960-01-01', NULL, 30, NULL)"))
  expect_identical(n, 3)
  got <- DBI::dbGetQuery(con, "SELECT * FROM main.dbi.t ORDER BY i")
  expect_identical(got, data.frame(
    i = 1:3, s = c("a", NA, "it's"), d = as.Date(c("2024-01-02", NA, "1960-01-01")),
    b = c(TRUE, FALSE, NA), x = bit64::as.integer64(c(10, NA, 30)),
    ts = as.POSIXct(c("2024-01-02 03:04:05", NA, NA), tz = "UTC"), stringsAsFactors = FALSE))
  # The same mapping as dbx_read_table() (bigint: integer64 with bit64, the default).
  read <- dbx_read_table("main.dbi.t", conn = con@conn)
  read <- read[order(read$i), ]
  rownames(read) <- NULL
  expect_identical(got, read)
  res <- DBI::dbSendQuery(con, "SELECT id FROM range(25) ORDER BY id")
  chunks <- list()
  while (!DBI::dbHasCompleted(res)) chunks[[length(chunks) + 1L]] <- DBI::dbFetch(res, n = 10)
  expect_identical(lengths(lapply(chunks, `[[`, "id")), c(10L, 10L, 5L))
  expect_identical(unlist(lapply(chunks, function(ch) as.character(ch$id))), as.character(0:24))
  expect_identical(DBI::dbGetRowCount(res), 25)
  expect_identical(DBI::dbColumnInfo(res)$name, "id")
  DBI::dbClearResult(res)
  expect_false(DBI::dbIsValid(res))
  expect_identical(nrow(DBI::dbGetQuery(con, "SELECT id FROM range(10)", n = 3)), 3L)
})

test_that("tables: write (overwrite/append), list, fields, exists, read, remove, three-level Ids", {
  con <- sql_con()
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dbi")
  id <- DBI::Id(catalog = "main", schema = "dbi", table = "cars")
  expect_identical(as.character(DBI::dbQuoteIdentifier(con, id)), "`main`.`dbi`.`cars`")
  expect_identical(as.character(DBI::dbQuoteIdentifier(con, "we`ird")), "`we``ird`")
  expect_identical(as.character(DBI::dbQuoteString(con, "it's \\ ok")), "'it\\'s \\\\ ok'")
  cars <- mtcars[1:5, 1:3]
  rownames(cars) <- NULL
  DBI::dbWriteTable(con, id, cars, overwrite = TRUE)
  expect_true(DBI::dbExistsTable(con, id))
  expect_true(DBI::dbExistsTable(con, "main.dbi.cars"))
  expect_false(DBI::dbExistsTable(con, DBI::Id(catalog = "main", schema = "dbi", table = "nope")))
  expect_true("cars" %in% DBI::dbListTables(con, catalog = "main", schema = "dbi"))
  expect_identical(DBI::dbListFields(con, id), c("mpg", "cyl", "disp"))
  expect_identical(DBI::dbReadTable(con, id), cars)
  expect_error(DBI::dbWriteTable(con, id, cars), class = "dbrxr_error")
  DBI::dbWriteTable(con, id, cars, append = TRUE)
  expect_identical(as.numeric(DBI::dbGetQuery(con, "SELECT COUNT(*) AS n FROM `main`.`dbi`.`cars`")$n), 10)
  DBI::dbRemoveTable(con, id)
  expect_false(DBI::dbExistsTable(con, id))
  expect_false("cars" %in% DBI::dbListTables(con, catalog = "main", schema = "dbi"))
  expect_error(DBI::dbRemoveTable(con, id), class = "dbrxr_sql_error")
  DBI::dbRemoveTable(con, id, fail_if_missing = FALSE)
  expect_identical(DBI::dbDataType(con, data.frame(a = 1L, b = 1, c = "x", d = Sys.Date(), e = TRUE)),
                   c(a = "INT", b = "DOUBLE", c = "STRING", d = "DATE", e = "BOOLEAN"))
})

test_that("Spark SQL errors are dbrxr_sql_errors with Spark's class and position", {
  con <- sql_con()
  e <- expect_error(DBI::dbGetQuery(con, "SELECT (1 FROM range(1)"), class = "dbrxr_sql_error")
  expect_identical(e$error_class, "PARSE_SYNTAX_ERROR")
  expect_identical(e$sqlstate, "42601")
  expect_equal(e$line, 1)
  expect_true(is.numeric(e$pos))
  expect_match(conditionMessage(e), "Spark SQL failed: [PARSE_SYNTAX_ERROR]", fixed = TRUE)
  e <- expect_error(DBI::dbGetQuery(con, "SELECT * FROM main.nope.nope"), class = "dbrxr_sql_error")
  expect_identical(e$error_class, "TABLE_OR_VIEW_NOT_FOUND")
  expect_equal(e$pos, 14)
  expect_error(DBI::dbGetQuery(con, "SELECT 1", params = list(1)), class = "dbrxr_input_error")
  DBI::dbDisconnect(con)
  expect_error(DBI::dbGetQuery(con, "SELECT 1"), class = "dbrxr_input_error")
})

test_that("dbConnect() takes dbx_connect()'s arguments and closes what it opened", {
  skip_if_not_installed("DBI")
  con <- DBI::dbConnect(databricks_sql(), host = "https://example.invalid", token = "dapi-x",
                        cluster_id = "c-1")
  expect_s4_class(con, "DatabricksSQLConnection")
  inner <- con@conn
  expect_identical(inner$info$cluster_id, "c-1")
  DBI::dbDisconnect(con)
  expect_true(inner$closed)
})
