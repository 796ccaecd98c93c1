# `timeout =` on every verb that runs remote code: the whole call is bounded,
# the remote command ends Cancelled and the error is a dbrxr_timeout_error.
file_env <- environment()

cancelled <- function(conn) dbrxr:::local_stats(conn)$commands$Cancelled %||% 0

# Runs `expr`, which must time out (timeout = 1 on a 30 s job) within 2 s
# and leave one more Cancelled command on the local cluster.
expect_timeout <- function(expr, conn) {
  before <- cancelled(conn)
  t0 <- Sys.time()
  e <- expect_error(expr, class = "dbrxr_timeout_error")
  expect_match(conditionMessage(e), "did not finish within its timeout of 1 s", fixed = TRUE)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  expect_lt(elapsed, 2)
  expect_identical(e$final_status, "Cancelled")
  expect_gt(cancelled(conn), before)
  # The context stays usable (R answers ~0.7 s after a cancel, more under load).
  expect_identical(remote_eval(1L + 1L, conn, timeout = 10), 2L)
}

slow_model <- function() structure(list(), class = "dbrxr_t_slow")

test_that("remote_eval(timeout = 1) of a 30 s job", {
  conn <- remote_test_conn(file_env)
  remote_eval(NULL, conn)  # bootstrap outside the timed call
  expect_timeout(remote_eval(Sys.sleep(30), conn, timeout = 1), conn)
})

test_that("remote_score() and predict(<remote model>) with timeout = 1", {
  conn <- remote_test_conn(file_env)
  predict.dbrxr_t_slow <- function(object, newdata, ...) {
    Sys.sleep(30)
    rep(0, NROW(newdata))
  }
  m <- slow_model()
  rm <- remote_model(m, conn)
  expect_timeout(remote_score(m, mtcars, conn = conn, timeout = 1), conn)
  expect_timeout(predict(rm, mtcars, timeout = 1), conn)
})

test_that("a remote_function() wrapper with timeout = 1", {
  conn <- remote_test_conn(file_env)
  nap <- function(s) { Sys.sleep(s); s }
  rnap <- remote_function(nap, conn, timeout = 1)
  expect_identical(rnap(0), 0)
  expect_timeout(rnap(30), conn)
})

test_that("the connection's timeout option is the default of every verb", {
  conn <- local_test_cluster(timeout = 1)
  remote_eval(NULL, conn, timeout = 60)  # the context starts outside the timed call
  expect_timeout(remote_eval(Sys.sleep(30), conn), conn)
  # An explicit timeout wins over the connection's.
  expect_identical(remote_eval({ Sys.sleep(1.5); 3 }, conn, timeout = 10), 3)
})

test_that("remote_install_packages() checks its timeout", {
  conn <- remote_test_conn(file_env)
  expect_error(remote_install_packages("x", conn, timeout = -1), class = "dbrxr_input_error")
})

test_that("timeout must be a non-negative number", {
  expect_error(remote_eval(1, timeout = "1"), class = "dbrxr_input_error")
  expect_error(remote_score(lm(mpg ~ wt, mtcars), mtcars, timeout = -1),
               class = "dbrxr_input_error")
})

test_that("dbx_exec() follows the connection's timeout option too", {
  conn <- local_test_cluster(timeout = 1)
  before <- cancelled(conn)
  e <- expect_error(dbx_exec("import time; time.sleep(30)", conn), class = "dbrxr_timeout_error")
  expect_identical(e$final_status, "Cancelled")
  expect_gt(cancelled(conn), before)
})
