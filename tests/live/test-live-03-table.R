# A small table scored where it lives, compared with predict() here.
test_that("remote_score_table() over a small table is identical() to predict()", {
  skip_if(live_skipped("tables"), "DBRXR_LIVE_SKIP names tables")
  set.seed(42)
  n <- 2000
  data <- data.frame(id = seq_len(n), x1 = rnorm(n), x2 = runif(n),
                     f = sample(c("a", "b", "c"), n, replace = TRUE))
  data$y <- 1 + 2 * data$x1 - data$x2 + (data$f == "b") + rnorm(n)
  fit <- lm(y ~ x1 + x2 + f, data = data)
  src <- live_table("input")
  out <- live_table("scores")
  dbrxr::dbx_write_table(data, src, mode = "overwrite", conn = live$conn)
  back <- dbrxr::dbx_read_table(src, conn = live$conn)
  back <- back[order(back$id), ]
  rownames(back) <- NULL
  expect_identical(back[names(data)], data)
  res <- dbrxr::remote_score_table(fit, src, out, keep = "id", mode = "overwrite", conn = live$conn)
  expect_equal(res$rows, n)
  scored <- dbrxr::dbx_read_table(out, conn = live$conn)
  scored <- scored[order(scored$id), ]
  expect_identical(scored$id, data$id)
  pred <- scored[[setdiff(names(scored), "id")[1]]]
  expect_identical(pred, unname(predict(fit, data)))
})
