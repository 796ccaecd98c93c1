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

secs_since <- function(t0) as.numeric(Sys.time() - t0, units = "secs")

test_that("a server that stalls after the headers: timeout bounds dbx_exec and remote requests", {
  skip_if_not_installed("processx")
  url <- local_stalling_server()
  conn <- dbx_connect(host = url, token = "t", cluster_id = "c")
  on.exit(dbx_disconnect(conn))
  # Bounds as in issue 9 (timeout + 2 s), with a shorter timeout.
  t0 <- Sys.time()
  e <- expect_error(dbx_exec("1", conn, timeout = 4), class = "dbrxr_timeout_error")
  expect_lt(secs_since(t0), 6)
  expect_match(conditionMessage(e), "timeout|within", ignore.case = TRUE)
  t0 <- Sys.time()
  expect_error(dbrxr:::remote_request(conn, list(op = "ping"), timeout = 4),
               class = "dbrxr_timeout_error")
  expect_lt(secs_since(t0), 6)
  # The option is the default of every remote request.
  t0 <- Sys.time()
  withr::with_options(list(dbrxr.timeout = 2),
                      expect_error(remote_eval(1, conn), class = "dbrxr_timeout_error"))
  expect_lt(secs_since(t0), 4)
})

test_that("every request answered 503: timeout = 5 fails within 6 s with dbrxr_timeout_error", {
  conn <- local_test_cluster()
  dbx_exec("pass", conn)
  local_faults(conn, status_503_rate = 1, seed = 3)
  t0 <- Sys.time()
  e <- expect_error(dbx_exec("1", conn, timeout = 5), class = "dbrxr_timeout_error")
  expect_lt(secs_since(t0), 6)
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
  expect_lt(secs_since(t0), 0.05)
  while (!dbrxr:::remote_request_done(h)) Sys.sleep(0.05)
  expect_identical(dbrxr:::remote_request_finish(h)$value, 7)
  h <- dbrxr:::remote_request_start(conn, list(op = "eval", expr = quote(Sys.sleep(30)), globals = list()))
  Sys.sleep(0.3)
  t0 <- Sys.time()
  dbrxr:::remote_request_cancel(h)
  expect_lt(secs_since(t0), 3)
  expect_error(dbrxr:::remote_request_finish(h), class = "dbrxr_cancelled_error")
  expect_identical(remote_eval(3, conn), 3)
})

test_that("remote_score under 429, 503 and dropped connections: all right, user code run once each", {
  # 15 calls here; 60 (or DBRXR_FAULT_CALLS) in test-slow-request-path.R.
  expect_scored_once_under_faults(15)
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
  # 2 x 4 calls here (each after an eviction starts a context: ~2 s); 2 x 50
  # (or DBRXR_EVICT_CALLS) in test-slow-request-path.R.
  expect_evictions_answered_once(4)
})
