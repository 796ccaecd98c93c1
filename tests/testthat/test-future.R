# The future backend: plan(databricks) on a real local cluster, whose contexts
# are Python processes running R through rpy2.

skip_if_not_installed("future")

test_that("bad arguments are input errors before anything runs", {
  skip_if_no_rpy2()
  expect_error(databricks(1, conn = "nope"), class = "dbrxr_input_error")
  conn <- future_cluster()
  expect_error(databricks(1, conn = conn, workers = 0), class = "dbrxr_input_error")
  expect_error(databricks(1, conn = conn, timeout = -1), class = "dbrxr_input_error")
})

test_that("resolved() never waits, value() does; globals and large globals travel", {
  local_databricks_plan(workers = 2)
  f <- future::future({
    Sys.sleep(1.5)
    "done"
  })
  t <- elapsed(r <- future::resolved(f))
  expect_false(r)
  expect_lt(t, 0.05)
  expect_identical(future::value(f), "done")
  expect_true(future::resolved(f))

  square <- function(x) x^2
  n <- 10L
  expect_identical(future::value(future::future(sum(square(seq_len(n))))), 385)
  big <- stats::runif(3e5)  # 2.4 MB: staged, not inline
  expect_identical(future::value(future::future(sum(big))), sum(big))
  df <- data.frame(x = factor(c("a", "b")), d = as.Date("2024-01-01") + 0:1)
  expect_identical(future::value(future::future(df)), df)
})

test_that("a model global finds its predict() method's package on the cluster", {
  skip_if_not_installed("ranger")
  local_databricks_plan(workers = 2)
  fit <- ranger::ranger(mpg ~ ., mtcars, num.trees = 20, seed = 1, num.threads = 1)
  p <- future::value(future::future(predict(fit, mtcars[1:3, ])$predictions, seed = TRUE))
  expect_identical(p, predict(fit, mtcars[1:3, ])$predictions)
})

test_that("a remote_model() handle among a future's globals is the model in the worker", {
  skip_if_not_installed("ranger")
  conn <- local_databricks_plan(workers = 2)
  fit <- ranger::ranger(mpg ~ ., mtcars, num.trees = 20, seed = 1, num.threads = 1)
  m <- remote_model(fit, conn = conn)
  p <- future::value(future::future(predict(m, mtcars[1:3, ])$predictions, seed = TRUE))
  expect_identical(p, predict(fit, mtcars[1:3, ])$predictions)
  # The client's own predict() method (session code) comes with the handle.
  f <- structure(list(k = 2), class = "doubler")
  predict.doubler <- function(object, newdata, ...) newdata$mpg * object$k
  h <- remote_model(f, conn = conn)
  expect_identical(future::value(future::future(predict(h, mtcars))), mtcars$mpg * 2)
})

test_that("errors are re-raised with the remote message; warnings and messages relayed", {
  local_databricks_plan(workers = 2)
  f <- future::future(stop("boom on the cluster"))
  expect_error(future::value(f), "boom on the cluster", class = "simpleError")
  # The remote calls are kept, as future keeps them.
  inner <- function() stop("deep down")
  g <- future::future(inner())
  expect_error(future::value(g), "deep down")
  calls <- vapply(future::backtrace(g), function(cl) deparse(cl)[1], "")
  expect_true("inner()" %in% calls)
  expect_warning(v <- future::value(future::future({
    warning("careful there")
    3
  })), "careful there")
  expect_identical(v, 3)
  expect_message(future::value(future::future(message("hello from the cluster"))),
                 "hello from the cluster")
  expect_output(future::value(future::future(cat("printed remotely\n"))), "printed remotely")
})

test_that("future(seed = TRUE) gives the random numbers of plan(sequential)", {
  old <- future::plan(future::sequential)
  on.exit(future::plan(old), add = TRUE)
  set.seed(42)
  local_one <- future::value(future::future(stats::runif(3), seed = TRUE))
  set.seed(42)
  local_many <- future.apply::future_lapply(1:4, function(i) stats::rnorm(2), future.seed = TRUE)
  local_databricks_plan(workers = 2)
  set.seed(42)
  expect_identical(future::value(future::future(stats::runif(3), seed = TRUE)), local_one)
  set.seed(42)
  expect_identical(future.apply::future_lapply(1:4, function(i) stats::rnorm(2),
                                               future.seed = TRUE), local_many)
})

test_that("furrr::future_map works", {
  skip_if_not_installed("furrr")
  local_databricks_plan(workers = 2)
  expect_identical(furrr::future_map(1:4, ~ .x * 2L), list(2L, 4L, 6L, 8L))
  pids <- furrr::future_map_int(1:2, ~ Sys.getpid())
  expect_false(any(pids == Sys.getpid()))
})

test_that("a promises::then() chain on a dbrxr future resolves", {
  skip_if_not_installed("promises")
  skip_if_not_installed("later")
  local_databricks_plan(workers = 2)
  out <- NULL
  p <- promises::then(future::future(21 * 2), function(v) v + 1)
  promises::then(p, function(v) out <<- v)
  deadline <- Sys.time() + 20
  while (is.null(out) && Sys.time() < deadline) later::run_now(0.05)
  expect_identical(out, 43)
})

test_that("a context killed under its future fails that future only; its worker gets a new context", {
  local_databricks_plan(workers = 2)
  # An idle, warm pool gives the next future to its first worker.
  pid <- future::value(future::future(Sys.getpid()))
  victim <- future::future({
    Sys.sleep(30)
    "not reached"
  })
  other <- future::future({
    Sys.sleep(2)
    Sys.getpid()
  })
  Sys.sleep(1)  # the command is running
  expect_true(tools::pskill(pid, tools::SIGKILL))
  err <- tryCatch(future::value(victim), error = function(e) e)
  expect_s3_class(err, "FutureError")
  expect_s3_class(err, "dbrxr_error")
  other_pid <- future::value(other)
  expect_true(is.numeric(other_pid) && other_pid != pid)
  # Both workers busy at once: one of them is the replaced worker.
  pids <- future.apply::future_lapply(1:2, function(i) {
    Sys.sleep(0.5)
    Sys.getpid()
  })
  pids <- unlist(pids)
  expect_length(unique(pids), 2)
  expect_false(pid %in% pids)
  expect_true(other_pid %in% pids)
})

test_that("timeout bounds each future with dbrxr_timeout_error; the next future runs", {
  # 3 s: interrupting R on its own thread takes up to a second (measured
  # 0.7 s from the cancel to the next answer), and the next future has the
  # same bound.
  local_databricks_plan(workers = 1, timeout = 3)
  f <- future::future(Sys.sleep(20))
  t <- elapsed(err <- tryCatch(future::value(f), error = function(e) e))
  expect_s3_class(err, "dbrxr_timeout_error")
  expect_s3_class(err, "FutureError")
  expect_lt(t, 10)
  # The next future on the same worker, with a bound of its own that a busy
  # machine cannot reach (under load, the plan's 3 s was once too short for
  # the worker to settle after the cancel and run 1 + 1).
  expect_identical(future::value(future::future(1 + 1, timeout = 60)), 2)
})

test_that("deep recursion in a future is the R error a local R gives; the worker's context goes on", {
  deep <- quote({
    options(expressions = 5e5)
    g <- function(n) if (n == 0) 0 else 1 + g(n - 1)
    g(1e5)
  })
  # In a local R the same code ends in R's own error (future 1.31's own
  # handlers lose it under plan(sequential): the value is NULL there).
  local <- tryCatch(eval(deep, new.env()), error = function(e) e)
  expect_s3_class(local, "stackOverflowError")
  local_databricks_plan(workers = 1)
  pid <- future::value(future::future(Sys.getpid()))
  remote <- tryCatch(future::value(future::future(deep, substitute = FALSE)), error = function(e) e)
  expect_s3_class(remote, "stackOverflowError")
  expect_match(conditionMessage(remote), "C stack usage .* is too close to the limit")
  # The same context, alive, runs the next future.
  expect_identical(future::value(future::future(Sys.getpid())), pid)
  expect_identical(future::value(future::future(1 + 1)), 2)
})

test_that("Ctrl-C in value() cancels the command on the cluster; the next future runs", {
  skip_if_not_installed("callr")
  token <- "future-interrupt-token-0123456789"
  conn <- local_test_cluster(token = token)
  child <- callr::r_bg(function(url, token, cluster_id) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    future::plan(databricks, conn = conn, workers = 1)
    future::value(future::future(1))
    f <- future::future(Sys.sleep(60))
    r <- tryCatch(future::value(f), interrupt = function(e) "interrupted")
    again <- tryCatch(future::value(f), error = function(e) class(e))
    list(r = r, state = f$state, again = again, after = future::value(future::future(1 + 1)))
  }, args = list(conn$local_info$url, token, conn$local_info$cluster_id),
  env = c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)))
  on.exit(child$kill(), add = TRUE)
  # Bootstrap, the first future, then the long one: 3 commands.
  res <- interrupt_running_child(child, conn, executed = 3, start_within = 60, settle = 0.5,
                                 wait_ms = 30000)
  expect_identical(res$r, "interrupted")
  expect_identical(res$state, "interrupted")
  expect_true("FutureError" %in% res$again)
  expect_identical(res$after, 2)
})

test_that("dbx_disconnect() destroys the contexts of the connection's workers", {
  token <- "future-disconnect-token-0123456789"
  server <- local_test_cluster(token = token)
  conn <- dbx_connect(host = server$local_info$url, token = token,
                      cluster_id = server$local_info$cluster_id)
  old <- future::plan(databricks, conn = conn, workers = 2)
  on.exit(future::plan(old), add = TRUE)
  pids <- future.apply::future_lapply(1:2, function(i) {
    Sys.sleep(0.3)
    Sys.getpid()
  })
  expect_length(unique(unlist(pids)), 2)
  expect_equal(local_stats(server)$contexts$alive, 2)
  dbx_disconnect(conn)
  expect_equal(local_stats(server)$contexts$alive, 0)
  expect_error(future::future(1), class = "dbrxr_input_error")
})

test_that("plan(sequential) after plan(databricks) closes the workers' contexts, as multisession does", {
  token <- "future-plan-change-token-0123456789"
  server <- local_test_cluster(token = token)
  conn <- dbx_connect(host = server$local_info$url, token = token,
                      cluster_id = server$local_info$cluster_id)
  on.exit(dbx_disconnect(conn), add = TRUE)
  old <- future::plan(databricks, conn = conn, workers = 2)
  on.exit(future::plan(old), add = TRUE)
  pids <- future.apply::future_lapply(1:2, function(i) {
    Sys.sleep(0.3)
    Sys.getpid()
  })
  expect_length(unique(unlist(pids)), 2)
  expect_equal(local_stats(server)$contexts$alive, 2)
  future::plan(future::sequential)
  expect_equal(local_stats(server)$contexts$alive, 0)
  # The connection itself goes on, and a new plan opens new workers.
  expect_identical(remote_eval(1 + 1, conn), 2)
  future::plan(databricks, conn = conn, workers = 1)
  expect_identical(future::value(future::future(3 * 2)), 6)
  future::plan(future::sequential)
  expect_equal(local_stats(server)$contexts$alive, 1)  # conn's own context only
})

test_that("globals holding versions or function frames with `...` can be inspected", {
  # A FutureResult holds R.version's numeric_version, whose `[[` never ends;
  # a closure made inside f(...) keeps a frame whose `...` cannot be got.
  make <- function(...) function(x) x
  g <- make()
  info <- check_transportable(list(v = packageVersion("stats"), r = R.version, g = g), "x")
  expect_length(info$externalptrs, 0)
})
