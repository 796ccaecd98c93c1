# remote_score() and remote_model() on a real local cluster (Python, rpy2, R).
file_env <- environment()

d <- scoring_data()
nd <- d[c(3, 50, 7, 120, 200:260), ]
nd$x1[c(2, 5)] <- NA   # NA rows
cc <- stats::complete.cases(nd)

expect_same_prediction <- function(model, newdata, ..., type = NULL) {
  conn <- remote_test_conn(file_env)
  local <- if (is.null(type)) predict(model, newdata, ...) else
    predict(model, newdata, type = type, ...)
  remote <- remote_score(model, newdata, ..., type = type, conn = conn)
  expect_identical(remote, local)
}

test_that("lm with factors, NA rows and Dates", {
  expect_same_prediction(lm(y ~ x1 + x2 + grp + day, data = d), nd)
})

test_that("glm binomial, type = 'response'", {
  expect_same_prediction(glm(cls ~ x1 + x2 + grp + day, data = d, family = binomial), nd,
                         type = "response")
})

test_that("rpart, type = 'class' and 'prob'", {
  fit <- rpart::rpart(cls ~ x1 + x2 + grp + day, data = d)
  expect_same_prediction(fit, nd, type = "class")
  expect_same_prediction(fit, nd, type = "prob")
})

test_that("randomForest and ranger classification", {
  rf <- randomForest::randomForest(cls ~ x1 + x2 + grp, data = d, ntree = 51)
  expect_same_prediction(rf, nd)
  expect_same_prediction(rf, nd, type = "prob")
  rg <- ranger::ranger(cls ~ x1 + x2 + grp + day, data = d, num.trees = 50, seed = 1)
  expect_same_prediction(rg, nd[cc, ])
})

test_that("ties broken at random in predict() are broken the same way", {
  conn <- remote_test_conn(file_env)
  # An even number of trees: randomForest breaks tied votes with R's random
  # numbers (here 9 of 400 rows change between two seeds).
  rf <- randomForest::randomForest(cls ~ x1 + x2, data = d, ntree = 4)
  set.seed(4)
  other <- predict(rf, d)
  set.seed(3)
  remote <- remote_score(rf, d, conn = conn)
  after_remote <- runif(1)
  set.seed(3)
  local <- predict(rf, d)
  expect_false(identical(other, local))
  expect_identical(remote, local)
  expect_identical(after_remote, runif(1))
})

test_that("glmnet with s = and a matrix", {
  x <- model.matrix(~ x1 + x2 + grp, d)[, -1]
  fit <- glmnet::glmnet(x, d$y)
  newx <- x[1:40, ]
  expect_same_prediction(fit, newx, s = 0.05)
  expect_same_prediction(fit, newx, s = c(0.01, 0.1), type = "response")
})

test_that("e1071::svm with probabilities", {
  fit <- e1071::svm(cls ~ x1 + x2 + grp, data = d, probability = TRUE)
  expect_same_prediction(fit, nd[cc, ], probability = TRUE)
})

test_that("mgcv::gam", {
  fit <- mgcv::gam(y ~ s(x1) + x2 + grp, data = d)
  expect_same_prediction(fit, nd)
  expect_same_prediction(fit, nd, se.fit = TRUE)
})

test_that("a model read from an .rds path", {
  fit <- lm(y ~ x1 + grp + day, data = d)
  path <- withr::local_tempfile(fileext = ".rds")
  saveRDS(fit, path)
  conn <- remote_test_conn(file_env)
  expect_identical(remote_score(path, nd, conn = conn), predict(fit, nd))
  expect_error(remote_score(paste0(path, ".nope"), nd, conn = conn), class = "dbrxr_input_error")
})

test_that("1e6 rows x 10 columns score through staging in one call", {
  conn <- remote_test_conn(file_env)
  set.seed(2)
  big <- as.data.frame(matrix(runif(1e7), ncol = 10))
  # Fitted where its formula does not capture `big` (this test's environment).
  fit <- eval(quote(lm(V1 ~ ., data = d)), list(d = big[1:2000, ]), globalenv())
  before <- dbrxr:::local_stats(conn)
  pred <- remote_score(fit, big, conn = conn, progress = FALSE)
  after <- dbrxr:::local_stats(conn)
  expect_identical(pred, predict(fit, big))
  # The 80 MB went through staging uploads, not through the command text.
  staged_in <- function(s) sum(vapply(s$routes[grepl("add-block|dbfs/put|/api/2.0/fs/files", names(s$routes))],
                                      function(r) r$bytes_in, numeric(1)))
  expect_gt(staged_in(after) - staged_in(before), 80e6)
  cmd_in <- function(s) s$routes[["POST /api/1.2/commands/execute"]]$bytes_in
  expect_lt(cmd_in(after) - cmd_in(before), 1e6)
})

# A formula's environment travels with the model: fitted here, the model
# would carry this test's (changing) environment and so change its hash. At
# top level, as users fit models, the environment is the global one.
global_formula <- function(text) stats::as.formula(text, env = globalenv())

test_that("a model is shipped once: the second call sends no model bytes", {
  conn <- remote_test_conn(file_env)
  fit <- randomForest::randomForest(global_formula("cls ~ x1 + x2 + grp"), data = d, ntree = 301)
  size <- length(serialize(fit, NULL, xdr = FALSE))
  expect_gt(size, 1e6)
  first <- bytes_in(conn)
  p1 <- remote_score(fit, nd[1:5, ], conn = conn)
  second <- bytes_in(conn)
  p2 <- remote_score(fit, nd[1:5, ], conn = conn)
  third <- bytes_in(conn)
  expect_identical(p1, p2)
  expect_gt(second - first, size)
  expect_lt(third - second, 50000)
})

test_that("a cluster restart between two calls is survived", {
  conn <- remote_test_conn(file_env)
  fit <- lm(y ~ x1 + grp, data = d)
  expect_identical(remote_score(fit, nd, conn = conn), predict(fit, nd))
  boots <- dbrxr:::remote_state(conn)$stats$bootstraps
  dbrxr:::local_restart(conn)
  expect_identical(remote_score(fit, nd, conn = conn), predict(fit, nd))
  expect_equal(dbrxr:::remote_state(conn)$stats$bootstraps, boots + 1)
  # A remote_model handle survives it too (re-shipped without being asked).
  rm <- remote_model(fit, conn)
  dbrxr:::local_restart(conn)
  expect_identical(predict(rm, nd), predict(fit, nd))
})

test_that("remote_model: handle, print method and predict()", {
  conn <- remote_test_conn(file_env)
  fit <- glm(global_formula("cls ~ x1 + grp"), data = d, family = binomial)
  rm <- remote_model(fit, conn)
  expect_s3_class(rm, "dbx_remote_model")
  expect_equal(rm$hash, dbrxr:::rust_sha256(serialize(fit, NULL, xdr = FALSE))$value)
  expect_equal(rm$class, class(fit))
  expect_true("stats" %in% rm$packages)
  expect_output(print(rm), "dbx_remote_model")
  before <- bytes_in(conn)
  expect_identical(predict(rm, nd, type = "response"), predict(fit, nd, type = "response"))
  expect_identical(remote_score(rm, nd, conn = conn), predict(fit, nd))
  expect_lt(bytes_in(conn) - before, 60000)
})

test_that("an error in predict() on the cluster is a dbrxr_remote_error", {
  conn <- remote_test_conn(file_env)
  fit <- lm(y ~ x1 + grp, data = d)
  err <- expect_error(remote_score(fit, data.frame(z = 1:3), conn = conn),
                      class = "dbrxr_remote_error")
  expect_match(err$remote_message, "x1")
  expect_true(length(err$remote_traceback) > 0)
})

test_that("bad arguments and external pointers fail before anything is sent", {
  conn <- remote_test_conn(file_env)
  fit <- lm(y ~ x1, data = d)
  commands <- function() dbrxr:::local_stats(conn)$commands$executed
  n0 <- commands()
  expect_error(remote_score(fit, conn = conn), class = "dbrxr_input_error")
  expect_error(remote_score(fit, nd, type = 1, conn = conn), class = "dbrxr_input_error")
  bad <- fit
  bad$handle <- new("externalptr")
  err <- expect_error(remote_score(bad, nd, conn = conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(err), "external pointer")
  expect_error(remote_score(fit, nd, extra = new("externalptr"), conn = conn),
               class = "dbrxr_input_error")
  expect_equal(commands(), n0)
})

test_that("chunked scoring (forced small chunks) joins to the same value, with progress", {
  conn <- remote_test_conn(file_env)
  withr::local_options(dbrxr.chunk_bytes = 1500, dbrxr.inline_request_max = 4000,
                       dbrxr.inline_answer_max = 500)
  rp <- rpart::rpart(cls ~ x1 + x2 + grp + day, data = d)
  expect_same_prediction(rp, nd, type = "class")
  expect_same_prediction(rp, nd, type = "prob")
  sv <- e1071::svm(cls ~ x1 + x2 + grp, data = d, probability = TRUE)
  expect_same_prediction(sv, nd[cc, ], probability = TRUE)
  rg <- ranger::ranger(cls ~ x1 + x2 + grp, data = d, num.trees = 20, seed = 1)
  expect_same_prediction(rg, nd[cc, ])
  fit <- lm(y ~ x1 + grp + day, data = d)
  expect_identical(remote_score(fit, nd, conn = conn, progress = TRUE), predict(fit, nd))
  # se.fit gives a list per call: not joinable, so it is scored in one piece.
  expect_same_prediction(fit, nd, se.fit = TRUE)
})

test_that("names that are row numbers stay a deferred conversion when chunks are joined", {
  range_of <- function(x) dbrxr:::unwrap(dbrxr:::rust_deferred_row_range(x))
  expect_identical(range_of(as.character(5:10)), c(5L, 10L))
  expect_identical(range_of(as.character(seq_len(1e5))), c(1L, 100000L))
  expect_null(range_of(as.character(c(1L, 3L, 4L))))
  expect_null(range_of(as.character(c(2.5, 3.5))))
  expect_null(range_of(c("1", "2")))
  expect_null(range_of(1:3))
  expect_null(range_of(NULL))
  touched <- as.character(7:9)
  nchar(touched)  # elements made on the way are the same strings
  expect_identical(range_of(touched), c(7L, 9L))

  conn <- remote_test_conn(file_env)
  withr::local_options(dbrxr.chunk_bytes = 2000)
  fit <- lm(y ~ x1 + grp + day, data = d)
  auto <- d
  res <- remote_score(fit, auto, conn = conn, progress = FALSE)
  expect_identical(res, predict(fit, auto))
  expect_identical(range_of(names(res)), c(1L, nrow(auto)))
  # Permuted rows, a subset with gaps and character row names take the
  # ordinary join.
  for (x in list(auto[rev(seq_len(nrow(auto))), ], auto[seq(1, nrow(auto), by = 2), ],
                 `rownames<-`(auto, paste0("r", seq_len(nrow(auto)))))) {
    expect_identical(remote_score(fit, x, conn = conn, progress = FALSE), predict(fit, x))
  }
})
