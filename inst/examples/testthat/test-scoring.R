# A user's own tests of code that uses dbrxr, as in
# vignette("testing", package = "dbrxr"). Only exported helpers of dbrxr are
# used. Without a Python that can import rpy2, every test here skips, saying
# what is missing and how to install it.
library(testthat)
library(dbrxr)

# The code under test: it omits `conn`, so it runs on the default connection,
# which local_test_cluster() sets for the duration of each test.
score_fuel <- function(fit, cars) {
  pred <- remote_score(fit, cars)
  data.frame(model = rownames(cars), mpg = pred, row.names = NULL)
}

test_that("scores on the cluster equal local predictions", {
  local_test_cluster()
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  out <- score_fuel(fit, mtcars)
  expect_identical(out$mpg, unname(predict(fit, mtcars)))
})

# A model class of the user's own, with its predict() method defined outside
# any package: it travels with the model.
predict.fuel_rule <- function(object, newdata, ...) object$base - object$per_ton * newdata$wt

test_that("a predict() method of our own travels with the model", {
  local_test_cluster()
  rule <- structure(list(base = 37, per_ton = 5), class = "fuel_rule")
  expect_identical(score_fuel(rule, mtcars)$mpg, predict(rule, mtcars))
})

test_that("errors on the cluster come back as conditions", {
  local_test_cluster()
  expect_error(remote_eval(stop("no data")), class = "dbrxr_remote_error")
  expect_error(remote_eval(Sys.sleep(30), timeout = 1), class = "dbrxr_timeout_error")
})
