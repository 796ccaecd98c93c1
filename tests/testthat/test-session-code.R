# Session code travels: S3 methods and formula functions defined outside
# packages are shipped with models (and with remote_eval() globals) and
# defined on the cluster where dispatch and model.frame() find them.
file_env <- environment()

# The user's case: definitions in the global environment (or a sourced script).
local_global_defs <- function(defs, .env = parent.frame()) {
  for (nm in names(defs)) assign(nm, defs[[nm]], envir = globalenv())
  withr::defer(rm(list = intersect(names(defs), ls(globalenv(), all.names = TRUE)), envir = globalenv()),
               envir = .env)
}

test_that("a session-defined predict() method for a new class scores identically", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(
    predict.dbrxr_t_model = function(object, newdata, ...) {
      dbrxr_t_scale(object) * newdata$wt + object$b
    },
    dbrxr_t_scale = function(o) o$a * dbrxr_t_factor,
    dbrxr_t_factor = 2))
  m <- structure(list(a = 1.5, b = 3), class = "dbrxr_t_model")
  expect_identical(remote_score(m, mtcars, conn = conn), predict(m, mtcars))
  rm <- remote_model(m, conn)
  expect_setequal(rm$session, c("predict.dbrxr_t_model", "dbrxr_t_scale", "dbrxr_t_factor"))
  expect_output(print(rm), "session:  .*predict.dbrxr_t_model")
  expect_identical(predict(rm, head(mtcars)), predict(m, head(mtcars)))
  # remote_eval() of predict() on such an object brings the method too.
  expect_identical(remote_eval(predict(m, mtcars), conn), predict(m, mtcars))
})

test_that("a session-defined method for a subclass of lm scores identically", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(predict.dbrxr_t_lm = function(object, newdata, ...) {
    round(NextMethod(), 1)
  }))
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  class(fit) <- c("dbrxr_t_lm", class(fit))
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
  expect_true("stats" %in% remote_model(fit, conn)$packages)
})

test_that("methods defined in the calling environment (a test, a function) are found", {
  conn <- remote_test_conn(file_env)
  predict.dbrxr_t_local <- function(object, newdata, ...) rep(object$k, nrow(newdata))
  m <- structure(list(k = 7L), class = "dbrxr_t_local")
  expect_identical(remote_score(m, mtcars, conn = conn), predict(m, mtcars))
})

test_that("a formula calling a session function scores identically", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(dbrxr_t_sq = function(x) x^2))
  fit <- eval(quote(lm(mpg ~ dbrxr_t_sq(wt) + hp, data = mtcars)), globalenv())
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
  expect_identical(remote_model(fit, conn)$session, "dbrxr_t_sq")
  # Redefined: the new definition travels (another hash), not a stale one.
  local_global_defs(list(dbrxr_t_sq = function(x) x^2 + 0))
  expect_identical(remote_score(fit, head(mtcars), conn = conn), predict(fit, head(mtcars)))
})

test_that("an nls model whose formula calls a session function scores identically", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(dbrxr_t_expf = function(x, a, b) a * exp(b * x)))
  d <- data.frame(x = 1:25)
  d$y <- 2 * exp(0.1 * d$x) + sin(d$x) / 10
  fit <- eval(bquote(nls(y ~ dbrxr_t_expf(x, a, b), data = .(d), start = list(a = 1, b = 0.05))),
              globalenv())
  nd <- data.frame(x = c(0.5, 3, 30))
  expect_identical(remote_score(fit, nd, conn = conn), predict(fit, nd))
  expect_identical(remote_model(fit, conn)$session, "dbrxr_t_expf")
})

test_that("a loess formula with a session transform scores identically", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(dbrxr_t_lg = function(x) log(x)))
  fit <- eval(quote(loess(mpg ~ dbrxr_t_lg(disp), data = mtcars)), globalenv())
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
})

test_that("without any predict() method the error says so, and spots swapped arguments", {
  m <- structure(list(), class = "dbrxr_t_none")
  expect_error(remote_score(m, mtcars, conn = NULL), class = "dbrxr_input_error",
               regexp = "No predict\\(\\) method")
  fit <- lm(mpg ~ wt, mtcars)
  e <- expect_error(remote_score(mtcars, fit, conn = NULL), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "The model comes first")
})

test_that("a remote_function() using a model with a session method ships the method", {
  conn <- remote_test_conn(file_env)
  local_global_defs(list(predict.dbrxr_t_fn = function(object, newdata, ...) object$k * newdata))
  m <- structure(list(k = 3), class = "dbrxr_t_fn")
  f <- function(x) predict(m, x)
  rf <- remote_function(f, conn)
  expect_identical(rf(1:3), f(1:3))
  expect_output(print(rf), "session:  predict.dbrxr_t_fn")
})
