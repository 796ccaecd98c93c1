# DBItest (the DBI specification's own tests) against the local cluster's
# Spark SQL, for test-dbitest.R and test-slow-dbitest.R. Every skip below
# says why the test does not apply to Spark SQL or this backend.

dbitest_tweaks <- function() {
  DBItest::tweaks(
    constructor_name = "databricks_sql",
    # Spark SQL identifiers are tested with plain names only (see README).
    strict_identifier = TRUE,
    # Spark SQL has temporary views, no temporary tables.
    temporary_tables = FALSE,
    list_temporary_tables = FALSE,
    # Spark SQL has no TIME type.
    time_typed = FALSE,
    date_cast = function(x) paste0("DATE '", x, "'"),
    timestamp_cast = function(x) paste0("TIMESTAMP '", x, "'"),
    blob_cast = function(x) paste0("CAST(", x, " AS BINARY)"),
    # Positional `?` placeholders only.
    placeholder_pattern = "?",
    dbitest_version = "1.7.3"
  )
}

# name (a regular expression over DBItest's test names) = why it is skipped.
dbitest_skips <- c(
  "package_name" = "the driver lives in dbrxr, a package not named after a database (Rdbrxr)",
  "package_dependencies" = "checks the DESCRIPTION of an installed source tree; dbrxr imports DBI and methods as required",
  # Run on its own below, on a connection with bigint = "numeric": with the
  # default (integer64, exact) there is no loss to warn about, and
  # data_64_bit_lossless wants that default.
  "data_64_bit_numeric_warning" = "run with bigint = \"numeric\" (dbitest_run())",
  "data_time|data_time_current" = "Spark SQL has no TIME type",
  "data_timestamp_current(_typed)?" = "wants current_timestamp within 2 s of R's clock after the round trip; a Spark query's round trip took 1.4-2.1 s here, so it fails by timing",
  "(begin|commit|rollback|with_transaction)_.*" = "Spark SQL has no transactions (dbBegin() is an error by design)",
  "roundtrip_timestamp_extended" = "timestamps outside years 1-9999 fail in Spark's parquet writer",
  "list_objects_features" = "dbListObjects() prefixes (schemas as objects) are not implemented",
  "rows_affected_statement|execute_params|send_statement_params" = "DELETE needs Delta tables, which the local cluster does not have",
  "bind_multi_row_unequal_length|bind_multi_row_statement|bind_return_value|bind_repeated(_untouched)?" = "write their table with `temporary = TRUE`: Spark SQL has temporary views only",
  "reexport" = "dbrxr does not re-export DBI's generics (call them as DBI::)"
)

# The core areas run in make test (test-dbitest.R), the others in make
# test-slow (test-slow-dbitest.R). Not run: "stress" (DBItest 1.7.3's
# test_stress() itself fails: it calls run_tests() without its test_suite
# argument).
dbitest_core_areas <- c("getting_started", "driver", "connection", "result")
dbitest_more_areas <- c("sql", "meta", "transaction", "compliance")

# Runs DBItest's `areas` against the shared Spark cluster; one row per test.
dbitest_run <- function(areas) {
  conn <- sql_conn()
  DBItest::make_context(databricks_sql(), connect_args = list(conn = conn),
                        tweaks = dbitest_tweaks(), name = "dbrxr")
  rows <- list()
  for (area in areas) {
    rep <- testthat::ListReporter$new()
    fun <- getExportedValue("DBItest", paste0("test_", area))
    testthat::with_reporter(rep, fun(skip = names(dbitest_skips)), start_end_reporter = FALSE)
    res <- as.data.frame(rep$get_results())
    out <- Sys.getenv("DBRXR_DBITEST_OUT")
    if (nzchar(out)) saveRDS(rep$get_results(), file.path(out, paste0(area, ".rds")))
    if (nrow(res)) {
      res$area <- area
      rows[[area]] <- res
    }
    if (area == "result") {
      # data_64_bit_numeric_warning wants a lossy default: bigint = "numeric".
      DBItest::make_context(databricks_sql(), connect_args = list(conn = conn, bigint = "numeric"),
                            tweaks = dbitest_tweaks(), name = "dbrxr")
      rep <- testthat::ListReporter$new()
      testthat::with_reporter(rep, DBItest::test_result(run_only = "data_64_bit_numeric_warning"),
                              start_end_reporter = FALSE)
      res <- as.data.frame(rep$get_results())
      res$area <- area
      rows[["result_numeric"]] <- res
      DBItest::make_context(databricks_sql(), connect_args = list(conn = conn),
                            tweaks = dbitest_tweaks(), name = "dbrxr")
    }
  }
  do.call(rbind, rows)
}

# Every test of `areas` that applies to Spark SQL passes; a report per area.
expect_dbitest_passes <- function(areas) {
  skip_if_not_installed("DBItest")
  res <- dbitest_run(areas)
  ok <- !res$failed & !res$error & !res$skipped
  report <- do.call(rbind, lapply(split(res, factor(res$area, levels = areas)), function(r) {
    data.frame(area = r$area[1], tests = nrow(r), passed = sum(!r$failed & !r$error & !r$skipped),
               skipped = sum(r$skipped), failed = sum(r$failed > 0 | r$error))
  }))
  report <- rbind(report, data.frame(area = "total", tests = sum(report$tests), passed = sum(report$passed),
                                     skipped = sum(report$skipped), failed = sum(report$failed)))
  cat("\nDBItest 1.7.3 against the local cluster (Spark SQL):\n")
  print(report, row.names = FALSE)
  skipped <- res[res$skipped & !res$failed & !res$error, "test"]
  if (length(skipped)) cat("skipped:", paste(skipped, collapse = ", "), "\n")
  failed <- res[res$failed > 0 | res$error, "test"]
  if (length(failed)) cat("FAILED:", paste(failed, collapse = ", "), "\n")
  expect_identical(failed, character())
  expect_gt(sum(ok), 0)
}
