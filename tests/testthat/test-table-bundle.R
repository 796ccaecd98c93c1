# Table jobs' bundles, built without a cluster.

test_that("postprocess and function models travel with their globals, not their frame", {
  make <- function() {
    big <- runif(1e6)  # 8 MB the function does not use
    k <- 2
    list(post = function(p) p * k, model = function(df) df$wt * k)
  }
  fns <- make()
  fit <- local(lm(mpg ~ wt, data = mtcars), envir = new.env(parent = globalenv()))
  b <- dbrxr:::score_bundle(fit, list(), fns$post, ".pred", call = NULL)
  expect_lt(length(b$bytes), 1e6)
  expect_identical(unserialize(b$bytes)$postprocess(3), 6)
  m <- dbrxr:::score_bundle(fns$model, list(), NULL, ".pred", call = NULL)
  expect_lt(length(m$bytes), 1e6)
  expect_identical(unserialize(m$bytes)$model(data.frame(wt = 1.5)), 3)
  # Package functions travel as they are.
  p <- dbrxr:::score_bundle(fit, list(), identity, ".pred", call = NULL)
  expect_identical(unserialize(p$bytes)$postprocess, identity)
})
