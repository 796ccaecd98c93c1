# Tables for test-table.R, test-mlflow.R, test-jobs.R and their test-slow-*.R files.

# n rows: factors with a rare level (1 row in 20,000, so most Arrow
# batches of 10,000 rows miss it), NAs, dates.
make_rows <- function(n, seed) {
  set.seed(seed)
  f <- sample(c("a", "b", "c"), n, replace = TRUE)
  # "0rare" sorts first: a batch without it would shift every factor code.
  f[sample.int(n, max(2L, n %/% 20000L))] <- "0rare"
  x1 <- rnorm(n)
  x1[sample.int(n, n %/% 20L)] <- NA
  x2 <- runif(n, -2, 2)
  d <- as.Date("2020-01-01") + sample.int(1500L, n, replace = TRUE)
  eff <- c(a = 0, b = 1, c = -1, "0rare" = 3)[f]
  y <- 2 * x2 + eff + as.numeric(d - as.Date("2020-01-01")) / 500 + rnorm(n)
  data.frame(id = seq_len(n), f = f, x1 = x1, x2 = x2, d = d, y = y,
             cls = factor(ifelse(y + rnorm(n) > 1, "yes", "no")),
             stringsAsFactors = FALSE)
}

# Seven model types score an n-row table (main.tt.data, `partitions`
# partitions) on `conn`; every output is identical() to local predict().
score_seven_models <- function(conn, n, partitions) {
  train <- make_rows(3000, 1)
  train$f <- factor(train$f)
  data <- make_rows(n, 2)
  dbx_write_table(data, "main.tt.data", mode = "overwrite", conn = conn)
  # `partitions` partitions, each cut into Arrow batches of 10,000 rows.
  src <- dbx_sql(sprintf("SELECT /*+ REPARTITION(%d) */ * FROM main.tt.data", partitions))
  ref <- dbx_read_table("main.tt.data", conn = conn)
  ref$f <- factor(ref$f, levels = levels(train$f))
  expect_lt(sum(ref$f == "0rare"), max(3, n / 2500))

  check <- function(out_name, expected) {
    out <- dbx_read_table(out_name, conn = conn)
    out <- out[order(out$id), , drop = FALSE]
    expect_identical(out$id, ref$id[order(ref$id)])
    got <- out[setdiff(names(out), "id")]
    exp <- as.data.frame(expected, stringsAsFactors = FALSE)
    exp <- exp[order(ref$id), , drop = FALSE]
    expect_identical(unname(as.list(got)), unname(lapply(exp, function(x) { attributes(x) <- NULL; x })))
  }

  fit_lm <- lm(y ~ x1 + x2 + f + d, data = train)
  res <- remote_score_table(fit_lm, src, "main.tt.lm", keep = "id", mode = "overwrite", conn = conn)
  expect_s3_class(res, "dbx_table")
  expect_equal(res$rows, n)
  check("main.tt.lm", list(unname(predict(fit_lm, ref))))

  fit_glm <- glm(cls ~ x1 + x2 + f, data = train, family = binomial())
  remote_score_table(fit_glm, src, "main.tt.glm", type = "response", keep = "id",
                     mode = "overwrite", progress = TRUE, conn = conn)
  check("main.tt.glm", list(unname(predict(fit_glm, ref, type = "response"))))

  skip_if_not_installed("ranger")
  fit_rg <- ranger::ranger(cls ~ x2 + f + d, data = train, probability = TRUE,
                           num.trees = 50, num.threads = 1, seed = 1)
  remote_score_table(fit_rg, src, "main.tt.ranger", keep = "id", mode = "overwrite",
                     postprocess = function(p) p$predictions, conn = conn)
  expect_identical(names(dbx_read_table("main.tt.ranger", limit = 1, conn = conn)),
                   c("id", ".pred_no", ".pred_yes"))
  check("main.tt.ranger", predict(fit_rg, ref)$predictions)

  skip_if_not_installed("randomForest")
  fit_rf <- randomForest::randomForest(cls ~ x2 + f, data = train, ntree = 51)
  remote_score_table(fit_rf, src, "main.tt.rf", keep = "id", mode = "overwrite", conn = conn)
  check("main.tt.rf", list(as.character(predict(fit_rf, ref))))

  skip_if_not_installed("rpart")
  fit_rp <- rpart::rpart(cls ~ x1 + x2 + f + d, data = train)
  remote_score_table(fit_rp, src, "main.tt.rpart", type = "class", keep = "id",
                     mode = "overwrite", conn = conn)
  check("main.tt.rpart", list(as.character(predict(fit_rp, ref, type = "class"))))

  skip_if_not_installed("glmnet")
  x <- cbind(x2 = train$x2, d = as.numeric(train$d), b = train$f == "b")
  gfit <- glmnet::glmnet(x, train$y)
  scorer <- local({
    fit <- gfit
    function(newdata) {
      loadNamespace("glmnet")
      m <- cbind(x2 = newdata$x2, d = as.numeric(newdata$d), b = newdata$f == "b")
      as.vector(stats::predict(fit, m, s = 0.05))
    }
  })
  remote_score_table(scorer, src, "main.tt.glmnet", keep = "id", mode = "overwrite", conn = conn)
  check("main.tt.glmnet", list(scorer(ref)))

  skip_if_not_installed("mgcv")
  fit_gam <- mgcv::gam(y ~ s(x2) + f + x1, data = train)
  remote_score_table(fit_gam, src, "main.tt.gam", keep = "id", mode = "overwrite", conn = conn)
  check("main.tt.gam", list(as.vector(predict(fit_gam, ref))))
}

# n cars scored by a registered model's URI in a Spark job (main.ml.cars):
# identical() to `fit`'s local predict().
score_cars_by_uri <- function(conn, uri, fit, n) {
  set.seed(4)
  df <- data.frame(id = seq_len(n), wt = runif(n, 1.5, 5.5), hp = round(runif(n, 50, 330)),
                   cyl = sample(c(4, 6, 8), n, replace = TRUE))
  dbx_write_table(df, "main.ml.cars", mode = "overwrite", conn = conn)
  remote_score_table(uri, "main.ml.cars", "main.ml.cars_scored",
                     keep = "id", mode = "overwrite", conn = conn)
  out <- dbx_read_table("main.ml.cars_scored", conn = conn)
  out <- out[order(out$id), ]
  expect_identical(unname(out$.pred), unname(predict(fit, df)))
}

# A job runs remote_score_table() over an n-row table (main.jobs.customers) on
# `conn`: its output is identical() to local predict(), and a missing table is
# the verb's own error, from the run.
expect_job_scores_table <- function(conn, n) {
  set.seed(21)
  df <- data.frame(id = seq_len(n), x1 = rnorm(n), x2 = runif(n),
                   g = factor(sample(c("a", "b", "c"), n, TRUE)))
  df$y <- 2 * df$x1 - df$x2 + as.integer(df$g) + rnorm(n)
  dbx_write_table(df, "main.jobs.customers", mode = "overwrite", conn = conn)
  fit <- lm(stats::as.formula("y ~ x1 + x2 + g", env = globalenv()), data = df)
  run <- remote_job(quote(remote_score_table(fit, "main.jobs.customers", "main.jobs.scores",
                                             keep = "id", mode = "overwrite")), conn = conn)
  expect_match(run$name, "remote_score_table(main.jobs.scores)", fixed = TRUE)
  tab <- dbx_run_result(run)
  expect_s3_class(tab, "dbx_table")
  expect_equal(tab$rows, n)
  out <- dbx_read_table("main.jobs.scores", conn = conn)
  out <- out[order(out$id), ]
  expect_identical(out$.pred, unname(predict(fit, df)))
  # A table that does not exist is the verb's own error, from the run.
  run <- remote_job(quote(remote_score_table(fit, "main.jobs.nope", "main.jobs.out")), conn = conn)
  expect_error(dbx_run_result(run), class = "dbrxr_table_not_found_error")
}
