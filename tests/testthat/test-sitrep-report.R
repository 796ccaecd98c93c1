# dbx_sitrep()'s report says the truth (issue 36): a schema that does not
# exist fails the grants check, named (the local cluster answered that any
# well-formed schema existed and was yours), and any subset of a report
# prints.

test_that("a schema that does not exist fails the grants check, naming it", {
  conn <- shared_cluster()
  row <- dbrxr:::check_grants(conn, "main.doesnotexist_36", Sys.time() + 60, new.env())
  expect_identical(row$status, "fail")
  expect_match(row$detail, "main.doesnotexist_36", fixed = TRUE)
  expect_match(row$detail, "does not exist", fixed = TRUE)
  expect_false(grepl("you own it", row$detail, fixed = TRUE))
  expect_match(row$fix, "CREATE SCHEMA", fixed = TRUE)
  # So does a catalog that does not exist.
  row <- dbrxr:::check_grants(conn, "nocatalog36.default", Sys.time() + 60, new.env())
  expect_identical(row$status, "fail")
  expect_match(row$detail, "catalog nocatalog36 does not exist", fixed = TRUE)
  # A schema that exists (every catalog has `default`) is still yours.
  row <- dbrxr:::check_grants(conn, "main.default", Sys.time() + 60, new.env())
  expect_identical(row$status, "ok")
  expect_match(row$detail, "you own it", fixed = TRUE)
})

test_that("subsets of a report print: rows, no rows, some columns", {
  local_clean_config()
  conn <- dbx_connect(host = "http://127.0.0.1:9", token = "t", cluster_id = "c")
  withr::defer(dbx_disconnect(conn))
  r <- dbx_sitrep(conn, timeout = 2)
  expect_s3_class(r, "dbx_sitrep")
  expect_output(print(r[r$status == "fail", ]), "Credentials")
  expect_output(print(r[r$status == "nothing", ]), "check")       # no rows
  expect_output(print(r[, c("check", "status")]), "credentials")  # some columns
  expect_output(print(r[1:2, "detail", drop = FALSE]), "detail")
  expect_output(print(r[c(1, NA), ]), "check")                    # an NA row
  expect_type(format(r[0, ]), "character")
})
