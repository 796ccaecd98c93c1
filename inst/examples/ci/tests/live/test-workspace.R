# Live tests of a project that uses dbrxr: run only against the workspace
# (the CI step skips them when its secrets are not configured).
library(testthat)
library(dbrxr)

test_that("the workspace is ready and scores exactly as here", {
  conn <- dbx_connect()
  on.exit(dbx_disconnect(conn), add = TRUE)
  report <- dbx_sitrep(conn, timeout = 300)
  expect_false(any(report$status == "fail"), info = paste(format(report), collapse = "\n"))
  fit <- glm(am ~ wt + hp, data = mtcars, family = binomial)
  expect_identical(remote_score(fit, mtcars, type = "response", conn = conn),
                   predict(fit, mtcars, type = "response"))
})
