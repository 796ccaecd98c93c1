# The future backend: two execution contexts as workers.
test_that("plan(databricks) futures return what sequential ones do", {
  skip_if_not_installed("future")
  skip_if_not_installed("future.apply")
  old <- future::plan(dbrxr::databricks, conn = live$conn, workers = 2)
  on.exit(future::plan(old), add = TRUE)
  f <- future::future(Sys.getpid())
  expect_true(is.numeric(future::value(f)))
  got <- future.apply::future_lapply(1:6, function(i) i^2 + 0.5, future.seed = TRUE)
  expect_identical(got, lapply(1:6, function(i) i^2 + 0.5))
})
