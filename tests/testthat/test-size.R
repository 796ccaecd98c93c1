# Size hygiene: the bytes that travel are reported, models dominated by
# captured environments warn once with the fix, and payloads over
# getOption("dbrxr.max_bytes") are refused before any upload.
file_env <- environment()

fit_in_function <- function(mb) {
  junk <- runif(mb * 1024^2 / 8)  # a variable of the function, captured by the formula
  d <- mtcars
  lm(mpg ~ wt + hp, data = d)
}

test_that("a model fitted in a function that captured 50 MB warns once, with the fix", {
  fit <- fit_in_function(50)
  w <- expect_warning(rm <- dbrxr:::as_remote_model(fit), class = "dbrxr_size_warning")
  expect_match(conditionMessage(w), "50.[0-9] MB of this model's 50.[0-9] MB are environments it captured",
               fixed = FALSE)
  expect_match(conditionMessage(w), "Fit it outside the function", fixed = TRUE)
  expect_gt(rm$size, 50 * 1024^2)
  expect_no_warning(dbrxr:::as_remote_model(fit))
  # A model fitted at top level does not warn.
  # (Fitted in the global environment: a test's own environment is captured too.)
  expect_no_warning(dbrxr:::as_remote_model(eval(quote(lm(mpg ~ wt + hp, data = mtcars)),
                                                 globalenv())))
  # It still scores, identically, and print() reports the bytes that travel.
  conn <- remote_test_conn(file_env)
  expect_identical(suppressWarnings(remote_score(fit, mtcars, conn = conn)), predict(fit, mtcars))
  expect_output(print(rm), "size:     50.[0-9] MB \\(the bytes that travel\\)")
})

test_that("a 2 GB payload is refused before any upload, naming the largest parts", {
  conn <- remote_test_conn(file_env)
  remote_eval(NULL, conn)
  before <- dbrxr:::local_stats(conn)$bytes_in
  fit <- lm(mpg ~ wt, data = mtcars)
  fit$extra <- double(2^28)  # 2 GB (never touched, so never really allocated)
  e <- expect_error(remote_score(fit, mtcars, conn = conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "The payload is 2.0 GB, more than the 1.0 GB allowed", fixed = TRUE)
  expect_match(conditionMessage(e), "`model$extra` (2.0 GB)", fixed = TRUE)
  big <- fit$extra
  e <- expect_error(remote_eval(length(big), conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "`big` (2.0 GB)", fixed = TRUE)
  expect_error(remote_function(function() length(big), conn), class = "dbrxr_input_error")
  expect_identical(dbrxr:::local_stats(conn)$bytes_in, before)
})

test_that("captured environments are named among the largest parts", {
  withr::local_options(dbrxr.max_bytes = 1e6)
  fit <- fit_in_function(2)
  e <- expect_error(suppressWarnings(dbrxr:::as_remote_model(fit)), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "`environments the model captured` \\(2.[0-9] MB\\)")
})

test_that("dbrxr.max_bytes is an option, and covers newdata", {
  conn <- remote_test_conn(file_env)
  withr::local_options(dbrxr.max_bytes = 1e6)
  nd <- data.frame(wt = runif(2e5), hp = 1)
  fit <- eval(quote(lm(mpg ~ wt, mtcars)), globalenv())
  e <- expect_error(remote_score(fit, nd, conn = conn),
                    class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "`newdata` (3.1 MB)", fixed = TRUE)
})

test_that("remote_function() reports the bytes that travel", {
  conn <- remote_test_conn(file_env)
  withr::local_options(dbrxr.size_notice_bytes = 1e6)
  lookup <- runif(3e5)
  f <- function(i) lookup[i]
  expect_warning(rf <- remote_function(f, conn), class = "dbrxr_size_warning")
  expect_output(print(rf), "size:     [0-9.]+ MB \\(f and its globals")
  expect_identical(rf(2:3), f(2:3))
})
