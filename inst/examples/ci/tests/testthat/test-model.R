# Unit tests of a project that uses dbrxr: they run on whatever cluster the
# environment names (in CI, the dbrxr-local service started before them).
library(testthat)
library(dbrxr)

test_that("the model scores on the cluster exactly as here", {
  skip_if(!nzchar(Sys.getenv("DATABRICKS_HOST")), "no cluster configured (DATABRICKS_HOST)")
  conn <- dbx_connect()
  on.exit(dbx_disconnect(conn), add = TRUE)
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
  expect_error(remote_eval(stop("no data"), conn), class = "dbrxr_remote_error")
})
