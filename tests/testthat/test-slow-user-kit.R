# The slow tier of test-user-kit.R: the official SDK conformance suite
# against the dbrxr-local installed with the package (make test runs the same
# suite against the binary it built, tools/run-tests.sh).

test_that("the installed dbrxr-local passes the official SDK conformance suite", {
  skip_if_not_slow()
  root <- normalizePath(file.path(testthat::test_path(), "..", ".."))
  py <- file.path(root, ".venv", "bin", "python")
  script <- file.path(root, "conformance", "test_sdk.py")
  skip_if_not(file.exists(py) && file.exists(script),
              "the conformance venv (make venv) is not in this source tree")
  counts <- withr::local_tempfile()
  out <- system2(py, c(shQuote(script), "--binary", shQuote(dbrxr_local_path()),
                       "--counts", shQuote(counts)), stdout = TRUE, stderr = TRUE)
  n <- as.integer(strsplit(readLines(counts), " ")[[1]])
  expect_gt(n[1], 0)
  expect_identical(n[2], 0L, info = paste(out, collapse = "\n"))
})
