# Each verb once, its result compared exactly with the same work done here.
d <- data.frame(x = c(1.5, -2, 3.25, NA, 7), g = factor(c("a", "b", "a", "c", "b")),
                day = as.Date("2026-01-01") + 0:4)

test_that("remote_score() is identical() to predict()", {
  fit <- lm(mpg ~ wt + hp + factor(cyl), data = mtcars)
  expect_identical(dbrxr::remote_score(fit, mtcars, conn = live$conn), predict(fit, mtcars))
  glm_fit <- glm(am ~ wt, data = mtcars, family = binomial)
  expect_identical(dbrxr::remote_score(glm_fit, mtcars, type = "response", conn = live$conn),
                   predict(glm_fit, mtcars, type = "response"))
})

test_that("remote_model() ships once and predict() is identical()", {
  fit <- lm(mpg ~ wt * hp, data = mtcars)
  m <- dbrxr::remote_model(fit, live$conn)
  expect_identical(predict(m, mtcars[1:7, ]), predict(fit, mtcars[1:7, ]))
  expect_identical(predict(m, mtcars), predict(fit, mtcars))
})

test_that("remote_eval() returns the value with its attributes", {
  k <- 3L
  expect_identical(dbrxr::remote_eval(transform(d, y = x * k), live$conn), transform(d, y = d$x * k))
  expect_identical(dbrxr::remote_eval(summary(d$g), live$conn), summary(d$g))
})

test_that("remote_function() runs each call remotely", {
  f <- dbrxr::remote_function(function(n, s) cumsum(seq_len(n)) * s, live$conn)
  expect_identical(f(10L, 2), cumsum(seq_len(10L)) * 2)
  expect_error(dbrxr::remote_eval(stop("on purpose"), live$conn), class = "dbrxr_remote_error")
})

test_that("staged payloads round-trip (upload, download)", {
  bytes <- serialize(list(d, mtcars), NULL)
  path <- dbrxr::dbx_upload(bytes, conn = live$conn)
  expect_true(startsWith(path, live$staging))
  expect_identical(dbrxr::dbx_download(path, conn = live$conn), bytes)
  live$staged_file <- path
  big <- runif(3e5)   # larger than the inline limits: staged both ways
  expect_identical(dbrxr::remote_eval(rev(big), live$conn), rev(big))
})
