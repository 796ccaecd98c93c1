# install_rpy2 = TRUE: the bootstrap pip-installs rpy2 (a version that fits the
# cluster's R) into the context's Python. Here that Python is a fresh virtualenv
# without rpy2, and pip reaches PyPI for real.
test_that("install_rpy2 = TRUE pip-installs a working rpy2 in the context", {
  skip_if_no_rpy2()
  venv <- withr::local_tempdir()
  ok <- suppressWarnings(system2("/usr/bin/python3", c("-m", "venv", shQuote(venv)),
                                 stdout = FALSE, stderr = FALSE))
  if (!identical(ok, 0L)) skip("cannot create a virtualenv (python3-venv missing)")
  py <- file.path(venv, "bin", "python")
  reachable <- suppressWarnings(system2(py, c("-c", shQuote(paste(
    "import urllib.request;",
    "urllib.request.urlopen('https://pypi.org/simple/rpy2/', timeout=10)"))),
    stdout = FALSE, stderr = FALSE))
  if (!identical(reachable, 0L)) skip("PyPI is not reachable")

  # Without the option: the documented error, naming the fix.
  plain <- suppressWarnings(local_cluster(python = py))
  withr::defer(dbx_disconnect(plain))
  err <- expect_error(remote_eval(1 + 1, conn = plain), class = "dbrxr_error")
  expect_match(conditionMessage(err), "install_rpy2 = TRUE", fixed = TRUE)

  conn <- suppressWarnings(local_cluster(python = py, install_rpy2 = TRUE))
  withr::defer(dbx_disconnect(conn))
  expect_equal(remote_eval(R.version.string, conn = conn), R.version.string)
  # A global-env formula: the model does not drag this test's environment along.
  fit <- lm(stats::as.formula("mpg ~ wt", env = globalenv()), data = mtcars)
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
})
