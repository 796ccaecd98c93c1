# The request path end to end: one deadline, exactly once under faults, one
# R -> Rust call per request.

# A loopback server that answers every request with headers and then stalls
# (never sends the body). Returns its URL; stopped when `.env` ends.
local_stalling_server <- function(.env = parent.frame()) {
  force(.env)
  py <- Sys.which("python3")
  if (!nzchar(py)) testthat::skip("no python3 for the stalling server")
  script <- withr::local_tempfile(fileext = ".py", .local_envir = .env)
  port_file <- withr::local_tempfile(.local_envir = .env)
  writeLines(c(
    "import http.server, socketserver, sys, time",
    "class H(http.server.BaseHTTPRequestHandler):",
    "    def stall(self):",
    "        self.send_response(200)",
    "        self.send_header('Content-Type', 'application/json')",
    "        self.send_header('Content-Length', '1000')",
    "        self.end_headers()",
    "        self.wfile.flush()",
    "        time.sleep(600)",
    "    do_GET = do_POST = stall",
    "    def log_message(self, *a): pass",
    "class S(socketserver.ThreadingMixIn, http.server.HTTPServer):",
    "    daemon_threads = True",
    "s = S(('127.0.0.1', 0), H)",
    "open(sys.argv[1], 'w').write(str(s.server_address[1]))",
    "s.serve_forever()"), script)
  proc <- processx::process$new(py, c(script, port_file))
  withr::defer(proc$kill(), envir = .env)
  deadline <- Sys.time() + 10
  while ((!file.exists(port_file) || !nzchar(readLines(port_file, warn = FALSE)[1] %||% "")) &&
         Sys.time() < deadline) Sys.sleep(0.05)
  sprintf("http://127.0.0.1:%s", readLines(port_file, warn = FALSE)[1])
}

elapsed <- function(t0) as.numeric(Sys.time() - t0, units = "secs")

test_that("a server that stalls after the headers: timeout bounds dbx_exec and remote requests", {
  skip_if_not_installed("processx")
  url <- local_stalling_server()
  conn <- dbx_connect(host = url, token = "t", cluster_id = "c")
  on.exit(dbx_disconnect(conn))
  # Bounds as in issue 9 (timeout + 2 s), with a shorter timeout.
  t0 <- Sys.time()
  e <- expect_error(dbx_exec("1", conn, timeout = 4), class = "dbrxr_timeout_error")
  expect_lt(elapsed(t0), 6)
  expect_match(conditionMessage(e), "timeout|within", ignore.case = TRUE)
  t0 <- Sys.time()
  expect_error(dbrxr:::remote_request(conn, list(op = "ping"), timeout = 4),
               class = "dbrxr_timeout_error")
  expect_lt(elapsed(t0), 6)
  # The option is the default of every remote request.
  t0 <- Sys.time()
  withr::with_options(list(dbrxr.timeout = 2),
                      expect_error(remote_eval(1, conn), class = "dbrxr_timeout_error"))
  expect_lt(elapsed(t0), 4)
})

test_that("every request answered 503: timeout = 5 fails within 6 s with dbrxr_timeout_error", {
  conn <- local_test_cluster()
  dbx_exec("pass", conn)
  local_faults(conn, status_503_rate = 1, seed = 3)
  t0 <- Sys.time()
  e <- expect_error(dbx_exec("1", conn, timeout = 5), class = "dbrxr_timeout_error")
  expect_lt(elapsed(t0), 6)
  expect_match(paste(conditionMessage(e)), "503|TEMPORARILY_UNAVAILABLE|retried")
})

test_that("a warm remote_eval crosses from R into Rust once to start, then only waits", {
  conn <- local_test_cluster()
  expect_identical(remote_eval(1 + 1, conn), 2)
  before <- dbrxr:::rust_debug_calls()
  expect_identical(remote_eval(2 + 2, conn), 4)
  after <- dbrxr:::rust_debug_calls()
  waits <- after$waits - before$waits
  expect_gte(waits, 1)
  expect_identical(after$calls - before$calls - waits, 1)
})

test_that("the async API: start, done without blocking, finish, cancel", {
  conn <- local_test_cluster()
  remote_eval(1, conn)
  h <- dbrxr:::remote_request_start(conn, list(op = "eval", expr = quote({ Sys.sleep(0.5); 7 }),
                                               globals = list()))
  t0 <- Sys.time()
  expect_false(dbrxr:::remote_request_done(h))
  expect_lt(elapsed(t0), 0.05)
  while (!dbrxr:::remote_request_done(h)) Sys.sleep(0.05)
  expect_identical(dbrxr:::remote_request_finish(h)$value, 7)
  h <- dbrxr:::remote_request_start(conn, list(op = "eval", expr = quote(Sys.sleep(30)), globals = list()))
  Sys.sleep(0.3)
  t0 <- Sys.time()
  dbrxr:::remote_request_cancel(h)
  expect_lt(elapsed(t0), 3)
  expect_error(dbrxr:::remote_request_finish(h), class = "dbrxr_cancelled_error")
  expect_identical(remote_eval(3, conn), 3)
})

# A model whose predict() counts its runs in the remote session, so tests can
# see how often user code ran there.
counting_model <- function() {
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  structure(list(fit = fit), class = "dbrxr_counting_model")
}
# Its environment is a package's (stats), as remote_score() wants a predict
# method from a package.
counting_predict <- function(object, newdata, ...) {
  n <- get0(".dbrxr_test_runs", globalenv(), ifnotfound = 0) + 1
  assign(".dbrxr_test_runs", n, globalenv())
  stats::predict(object$fit, newdata)
}
environment(counting_predict) <- asNamespace("stats")

# `n` remote_score() calls of random data under 30% 429 + 10% 503 + 5%
# dropped connections: every value identical to local predict(), and the
# model's predict() ran exactly `n` times on the cluster.
score_under_faults <- function(n, seed = 11) {
  conn <- local_test_cluster(.env = parent.frame())
  model <- counting_model()
  # remote_score() checks for a method here before shipping the model.
  registerS3method("predict", "dbrxr_counting_model", counting_predict)
  remote_eval(registerS3method("predict", "dbrxr_counting_model", pred, envir = globalenv()),
              conn, envir = list2env(list(pred = counting_predict)))
  remote_eval(assign(".dbrxr_test_runs", 0, globalenv()), conn)
  local_faults(conn, status_429_rate = 0.3, status_503_rate = 0.1, drop_rate = 0.05,
               retry_after_s = 0, seed = seed)
  # A call that hangs fails (saying where) instead of stalling the suite.
  withr::local_options(dbrxr.timeout = 120)
  set.seed(seed)
  ok <- 0L
  for (i in seq_len(n)) {
    rows <- sample(nrow(mtcars), sample(1:32, 1), replace = TRUE)
    nd <- mtcars[rows, ]
    nd$wt <- nd$wt * runif(length(rows), 0.5, 1.5)
    got <- remote_score(model, nd, conn = conn, progress = FALSE)
    if (identical(got, predict(model$fit, nd))) ok <- ok + 1L
  }
  stats <- local_stats(conn)
  local_faults(conn)
  runs <- remote_eval(get(".dbrxr_test_runs", globalenv()), conn)
  list(ok = ok, runs = runs, stats = stats)
}

test_that("remote_score under 429, 503 and dropped connections: all right, user code run once each", {
  res <- score_under_faults(as.integer(Sys.getenv("DBRXR_FAULT_CALLS", "60")))
  n <- as.integer(Sys.getenv("DBRXR_FAULT_CALLS", "60"))
  expect_identical(res$ok, n)
  expect_identical(as.integer(res$runs), n)
  expect_gt(res$stats$faults_injected, n / 2)
})

test_that("a 55 MB remote_score succeeds with 30% of connections dropped", {
  conn <- local_test_cluster()
  set.seed(5)
  big <- as.data.frame(matrix(runif(55e6 / 8), ncol = 10))
  fit <- lm(V1 ~ ., data = big[1:2000, ])
  remote_eval(1, conn)
  local_faults(conn, drop_rate = 0.3, seed = 9)
  pred <- remote_score(fit, big, conn = conn, progress = FALSE)
  expect_identical(pred, predict(fit, big))
  expect_gt(local_stats(conn)$faults_injected, 10)
})

test_that("a cluster terminated while a command runs is a dbrxr_cluster_error; the next call starts it", {
  conn <- local_test_cluster()
  remote_eval(1, conn)
  h <- dbrxr:::remote_request_start(conn, list(op = "eval", expr = quote(Sys.sleep(30)), globals = list()))
  Sys.sleep(0.5)
  dbrxr:::local_terminate(conn)
  e <- expect_error(dbrxr:::remote_request_finish(h), class = "dbrxr_cluster_error")
  expect_match(conditionMessage(e), "TERMINATED")
  expect_identical(e$state, "TERMINATED")
  expect_identical(remote_eval(2, conn), 2)
  job <- dbrxr:::exec_start(conn, "import time; time.sleep(30)")
  Sys.sleep(0.5)
  dbrxr:::local_terminate(conn)
  expect_error(dbrxr:::run_job(job, FALSE), class = "dbrxr_cluster_error")
  expect_identical(dbx_exec("print('back')", conn), "back")
})

test_that("contexts evicted every 0.05 s under two clients: every call answered, none run twice", {
  skip_if_not_installed("callr")
  n <- as.integer(Sys.getenv("DBRXR_EVICT_CALLS", "50"))
  conn <- local_test_cluster(token = "evict-test-token-0123456789")
  runs <- withr::local_tempfile()
  file.create(runs)
  client <- function(who, n, url, token, cluster_id, runs) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    options(dbrxr.timeout = 120)
    out <- list(ok = 0L, may_have_run = 0L, failed = character())
    for (i in seq_len(n)) {
      tag <- sprintf("%s-%d", who, i)
      # One string, one write: the two clients' lines never interleave.
      got <- tryCatch(remote_eval({ cat(paste0(tag, "\n"), file = runs, append = TRUE); tag }, conn),
                      error = function(e) e)
      if (identical(got, tag)) {
        out$ok <- out$ok + 1L
      } else if (inherits(got, "dbrxr_may_have_run_error")) {
        out$may_have_run <- out$may_have_run + 1L
      } else {
        out$failed <- c(out$failed, conditionMessage(got))
      }
    }
    out
  }
  env <- c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  args <- function(who) list(who, n, conn$local_info$url, "evict-test-token-0123456789",
                             conn$local_info$cluster_id, runs)
  a <- callr::r_bg(client, args = args("a"), env = env)
  b <- callr::r_bg(client, args = args("b"), env = env)
  on.exit({ a$kill(); b$kill() }, add = TRUE)
  evictions <- 0L
  deadline <- Sys.time() + 600
  while ((a$is_alive() || b$is_alive()) && Sys.time() < deadline) {
    evictions <- evictions + length(dbrxr:::local_evict(conn))
    # Often: a warm call takes ~3 ms, and a context is idle only between calls.
    Sys.sleep(0.05)
  }
  res <- list(a$get_result(), b$get_result())
  lines <- readLines(runs)
  expect_gt(evictions, 0)
  expect_identical(c(res[[1]]$failed, res[[2]]$failed), character())
  # Idle contexts are evicted, so no request is lost while it runs: every
  # call is answered (none "may have run").
  expect_identical(c(res[[1]]$ok, res[[2]]$ok), c(n, n))
  # Counted inside the remote R: every call ran, and none twice.
  expect_false(any(duplicated(lines)))
  expect_setequal(lines, c(sprintf("a-%d", seq_len(n)), sprintf("b-%d", seq_len(n))))
})
