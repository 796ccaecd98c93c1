# remote_eval() and remote_function() on a real local cluster.
file_env <- environment()

test_that("globals and helper functions from the global environment are shipped", {
  conn <- remote_test_conn(file_env)
  # Helpers defined at top level, as users do: their environment is the
  # global one, which the cluster does not share.
  eval(quote({
    dbrxr_t_helper <- function(x) x * 10
    dbrxr_t_outer <- function(x) dbrxr_t_helper(x) + dbrxr_t_offset
    dbrxr_t_offset <- 5
  }), globalenv())
  withr::defer(rm(list = c("dbrxr_t_helper", "dbrxr_t_outer", "dbrxr_t_offset"),
                  envir = globalenv()))
  n <- 4
  expect_identical(remote_eval(dbrxr_t_outer(seq_len(n)), conn),
                   c(15, 25, 35, 45))
  expect_identical(remote_eval(dbrxr_t_outer(4), conn, envir = globalenv()), 45)
  # Values travel as R values: factors, dates, attributes.
  x <- factor(c("b", "a", NA), levels = c("b", "a"))
  expect_identical(remote_eval(list(x, as.Date("2025-03-01") + 1:2), conn),
                   list(x, as.Date("2025-03-01") + 1:2))
  expect_equal(remote_eval(Sys.getpid(), conn), as.integer(dbrxr:::remote_state(conn)$info$pid))
})

test_that("packages of called functions are loaded remotely", {
  conn <- remote_test_conn(file_env)
  expect_true(remote_eval({ rpart::rpart.control(); "rpart" %in% loadedNamespaces() }, conn))
})

test_that("a remote stop() is a dbrxr_remote_error with message, call and traceback", {
  conn <- remote_test_conn(file_env)
  inner <- function(v) if (v > 1) stop("value too large: ", v) else v
  outer <- function(v) inner(v + 1)
  err <- expect_error(remote_eval(outer(3), conn), class = "dbrxr_remote_error")
  expect_equal(err$remote_message, "value too large: 4")
  expect_equal(err$remote_call, "inner(v + 1)")
  expect_equal(err$remote_traceback, c("outer(3)", "inner(v + 1)", "stop(\"value too large: \", v)"))
  expect_match(conditionMessage(err), "value too large")
  expect_s3_class(err, "dbrxr_error")
})

test_that("remote warnings, messages and printed output come back", {
  conn <- remote_test_conn(file_env)
  w <- expect_warning(
    expect_message(
      expect_output(res <- remote_eval({ print("printed remotely"); message("hello from R");
                                         warning("watch out"); 42 }, conn),
                    "printed remotely"),
      "hello from R", class = "dbrxr_remote_message"),
    "watch out", class = "dbrxr_remote_warning")
  expect_equal(w$remote_message, "watch out")
  expect_equal(res, 42)
})

test_that("external pointers among the globals fail before anything is sent", {
  conn <- remote_test_conn(file_env)
  ptr <- new("externalptr")
  n0 <- dbrxr:::local_stats(conn)$commands$executed
  expect_error(remote_eval(identity(ptr), conn), class = "dbrxr_input_error")
  expect_equal(dbrxr:::local_stats(conn)$commands$executed, n0)
})

test_that("remote_function: same arguments, defaults applied remotely, shipped once", {
  conn <- remote_test_conn(file_env)
  scale_sum <- function(x, times = 2, ...) sum(x, ...) * times + Sys.getpid() * 0
  rf <- remote_function(scale_sum, conn)
  expect_s3_class(rf, "dbx_remote_function")
  expect_equal(names(formals(rf)), c("x", "times", "..."))
  expect_output(print(rf), "scale_sum")
  expect_equal(rf(1:10), 110)
  expect_equal(rf(c(1, NA, 3), times = 3, na.rm = TRUE), 12)
  y <- 1:4
  expect_equal(rf(y, 1), 10)
  # NULL arguments travel as NULL.
  nul <- remote_function(function(a) is.null(a), conn)
  expect_true(nul(NULL))
  err <- expect_error(remote_function(function(x) stop("nope"), conn)(1),
                      class = "dbrxr_remote_error")
  expect_equal(err$remote_message, "nope")
  expect_error(remote_function(sum, conn), class = "dbrxr_input_error")
})

test_that("remote_eval survives an evicted context", {
  conn <- remote_test_conn(file_env)
  expect_equal(remote_eval(1 + 1, conn), 2)
  dbrxr:::local_evict(conn)
  expect_equal(remote_eval(2 + 2, conn), 4)
})

test_that("large values go through staging both ways", {
  conn <- remote_test_conn(file_env)
  big <- runif(3e5)   # 2.4 MB: above the inline limits
  expect_identical(remote_eval(rev(big), conn), rev(big))
})

test_that("without rpy2 the error says how to add it", {
  # A Python without rpy2 on any machine: python3 -S sees no site-packages.
  skip_if(!nzchar(Sys.which("python3")), "no python3 on PATH")
  py <- withr::local_tempfile(fileext = ".sh")
  writeLines(c("#!/bin/sh", "exec python3 -S \"$@\""), py)
  Sys.chmod(py, "0755")
  conn <- suppressWarnings(local_cluster(python = py))
  withr::defer(dbx_disconnect(conn))
  err <- expect_error(remote_eval(1, conn), class = "dbrxr_context_error")
  expect_match(conditionMessage(err), "rpy2")
  expect_match(paste(conditionMessage(err), collapse = " "), "install_rpy2 = TRUE")
})

test_that("remote code draws from this session's random numbers", {
  conn <- remote_test_conn(file_env)
  set.seed(11)
  a <- remote_eval(runif(3), conn)
  b <- runif(1)
  set.seed(11)
  expect_identical(a, runif(3))
  expect_identical(b, runif(1))
  draw <- remote_function(function(n) rnorm(n), conn)
  set.seed(5)
  x <- draw(2)
  set.seed(5)
  expect_identical(x, rnorm(2))
})

test_that("programmatic use: substitute = FALSE, expression(), and rlang's !!", {
  conn <- remote_test_conn(file_env)
  expect_identical(remote_eval(quote(sum(1:10)), conn, substitute = FALSE), 55L)
  f <- function(e) remote_eval(e, conn, substitute = FALSE)
  expect_identical(f(quote(sum(1:10))), 55L)
  n <- 4L
  expect_identical(f(call("seq_len", quote(n))), 1:4)  # globals of the built call are found
  expect_identical(remote_eval(expression(a <- 2, a * 21), conn, substitute = FALSE), 42)
  e <- quote(sum(1:10))
  expect_identical(remote_eval(!!e, conn), 55L)
  expect_error(remote_eval(list(1), conn, substitute = FALSE), class = "dbrxr_input_error")
  expect_identical(remote_eval(7L, conn, substitute = FALSE), 7L)
})

test_that("deep recursion is the R error a local R gives, on the same context", {
  conn <- remote_test_conn(file_env)
  remote_eval(1, conn)
  ctx <- dbrxr:::unwrap(dbrxr:::rust_session_info(conn$handle))$context_id
  err <- expect_error(remote_eval({
    options(expressions = 5e5)
    f <- function(n) if (n == 0) 0 else 1 + f(n - 1)
    f(1e5)
  }, conn), class = "dbrxr_remote_error")
  expect_match(conditionMessage(err), "C stack usage .* too close to the limit")
  # A value nested deeper than serialize() can go: an error, not a lost context.
  err <- expect_error(remote_eval({ x <- list(); for (i in 1:1e5) x <- list(x); x }, conn),
                      class = "dbrxr_remote_error")
  expect_match(conditionMessage(err), "C stack|could not be sent back")
  expect_identical(remote_eval(1 + 1, conn), 2)
  expect_identical(dbrxr:::unwrap(dbrxr:::rust_session_info(conn$handle))$context_id, ctx)
})

test_that("R runs on one thread of its own, with the caller's contextvars (rpy2's conversion rules)", {
  conn <- remote_test_conn(file_env)
  remote_eval(1, conn)
  out <- dbx_exec(paste(
    "import contextvars, threading, dbrxr_bootstrap as b",
    "import rpy2.robjects as ro",
    "from rpy2.robjects import numpy2ri",
    "from rpy2.robjects.conversion import localconverter",
    "v = contextvars.ContextVar('dbrxr_test')",
    "v.set('caller')",
    "with localconverter(ro.default_converter + numpy2ri.converter):",
    "    got = b.run_r(lambda: (threading.current_thread().name, v.get(), type(ro.r('1:3')).__name__))",
    "print(got)", sep = "\n"), conn)
  expect_match(out, "('dbrxr-R', 'caller', 'ndarray')", fixed = TRUE)
})
