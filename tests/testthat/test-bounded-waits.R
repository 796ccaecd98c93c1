# Every wait is bounded (issue 23, item 5): a workspace that answers and then
# stalls mid-body never makes a status call hang.

# Start fixtures/stall_server.py; returns its URL and a function that lists
# the requests it has seen.
local_stall_server <- function(.env = parent.frame()) {
  python <- Sys.getenv("DBRXR_PYTHON", Sys.which("python3"))
  skip_if(!nzchar(python), "no Python to run the stalling server")
  p <- processx::process$new(python, test_path("fixtures", "stall_server.py"),
                             stdout = "|", stderr = "|")
  withr::defer(p$kill(), envir = .env)
  first <- character()
  deadline <- Sys.time() + 10
  while (!length(first) && Sys.time() < deadline && p$is_alive()) {
    p$poll_io(200)
    first <- p$read_output_lines(1)
  }
  port <- as.integer(first[1])
  expect_false(is.na(port), info = paste(p$read_error_lines(), collapse = "\n"))
  seen <- character()
  list(url = sprintf("http://127.0.0.1:%d", port),
       requests = function() {
         seen <<- c(seen, grep("^request ", p$read_output_lines(), value = TRUE))
         sub("^request ", "", seen)
       })
}

test_that("dbx_cluster_status() against a server that stalls mid-body ends in a timeout", {
  local_clean_config()
  srv <- local_stall_server()

  conn <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1")
  withr::defer(dbx_disconnect(conn))
  e <- NULL
  took <- elapsed(e <- expect_error(dbx_cluster_status(conn, timeout = 2), class = "dbrxr_timeout_error"))
  expect_gte(took, 1.9)
  expect_lt(took, 6)
  expect_match(conditionMessage(e), "within its timeout of 2 s")
  expect_identical(e$timeout, 2)
  expect_false(grepl("dapi-stall", conditionMessage(e)))
  expect_true(any(grepl("^/api/2\\.[01]/clusters/get", srv$requests())))

  # The connection's `timeout` option, then `dbrxr.timeout`, bound it too.
  conn2 <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1", timeout = 1)
  withr::defer(dbx_disconnect(conn2))
  took <- elapsed(expect_error(dbx_cluster_status(conn2), class = "dbrxr_timeout_error"))
  expect_lt(took, 5)
  withr::local_options(dbrxr.timeout = 1)
  took <- elapsed(expect_error(dbx_cluster_status(conn), class = "dbrxr_timeout_error"))
  expect_lt(took, 5)

  # The next call on the connection works as before (the stalled job was cancelled).
  expect_error(dbx_cluster_status(conn, timeout = 0.5), class = "dbrxr_timeout_error")
})

test_that("status calls refuse timeouts that are not finite non-negative numbers", {
  local_clean_config()
  conn <- dbx_connect(host = "http://127.0.0.1:9", token = "t", cluster_id = "c")
  withr::defer(dbx_disconnect(conn))
  for (bad in list(Inf, NaN, -1, "10", c(1, 2))) {
    expect_error(dbx_cluster_status(conn, timeout = bad), class = "dbrxr_input_error")
  }
})

test_that("a local cluster answers dbx_cluster_status(timeout = ) as before", {
  conn <- dbrxr::local_test_cluster()
  st <- dbx_cluster_status(conn, timeout = 30)
  expect_s3_class(st, "dbx_cluster_status")
  expect_true(nzchar(st$state))
})

# One deadline per call (issue 36): the verbs that came without one return
# within it from a server that stalls mid-answer, with a classed timeout.

test_that("dbGetQuery(), dbx_run() and dbx_sitrep() against a stalling server end within their deadline", {
  local_clean_config()
  srv <- local_stall_server()
  # The connection's `timeout` option is the deadline of the DBI calls.
  conn <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1", timeout = 3)
  withr::defer(dbx_disconnect(conn))
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  e <- NULL
  took <- elapsed(e <- expect_error(DBI::dbGetQuery(con, "SELECT 1 AS x"), class = "dbrxr_timeout_error"))
  expect_lt(took, 3 + 4)
  expect_false(grepl("dapi-stall", conditionMessage(e)))

  # dbx_run() takes the connection's option too, else `dbrxr.timeout`, else 60 s.
  took <- elapsed(e <- expect_error(dbx_run(1, conn = conn), class = "dbrxr_timeout_error"))
  expect_lt(took, 3 + 4)
  expect_match(conditionMessage(e), "within its timeout of 3 s")
  conn2 <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1")
  withr::defer(dbx_disconnect(conn2))
  withr::local_options(dbrxr.timeout = 2)
  took <- elapsed(expect_error(dbx_run(1, conn = conn2), class = "dbrxr_timeout_error"))
  expect_lt(took, 2 + 4)
  took <- elapsed(expect_error(dbx_jobs(conn2), class = "dbrxr_timeout_error"))
  expect_lt(took, 2 + 4)

  # dbx_sitrep(timeout = ) is one deadline for all its checks (it took 7 x
  # the timeout when each check had its own): the check that stalls fails
  # naming the limit, those after it are skipped; the report comes back.
  took <- elapsed(r <- dbx_sitrep(conn2, schema = "main.default", timeout = 3))
  expect_lt(took, 3 + 2 + 4)  # + the staging probe's clean-up (2 s at most)
  expect_identical(r$status[r$check == "credentials"], "fail")
  expect_match(r$detail[r$check == "credentials"], "time limit", fixed = TRUE)
  expect_true(all(r$status %in% c("fail", "skip")))
  expect_true(any(grepl("report's time limit of 3 s ran out", r$detail, fixed = TRUE)))
})

test_that("a registry model's lookup runs under remote_score()'s timeout", {
  local_clean_config()
  srv <- local_stall_server()
  conn <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1")
  withr::defer(dbx_disconnect(conn))
  took <- elapsed(expect_error(remote_score("models:/main.m.lm@champion", mtcars, conn = conn, timeout = 2),
                               class = "dbrxr_timeout_error"))
  expect_lt(took, 2 + 4)
})

test_that("the call deadline: the sooner of nested ones wins, and it is gone after the call", {
  f <- function(limit, inner) {
    dbrxr:::local_call_deadline(limit)
    if (!is.null(inner)) g(inner) else dbrxr:::the$deadline$limit
  }
  g <- function(limit) {
    dbrxr:::local_call_deadline(limit)
    dbrxr:::the$deadline$limit
  }
  expect_identical(f(5, 50), 5)
  expect_identical(f(50, 5), 5)
  expect_identical(f(5, NULL), 5)
  expect_null(dbrxr:::the$deadline)
  expect_lte(dbrxr:::cap_timeout(100), 100)
  expect_null(dbrxr:::cap_timeout(NULL))
})

# Set a package constant for the calling test (testthat 3.1.6 has no
# local_mocked_bindings()).
local_package_value <- function(name, value, .env = parent.frame()) {
  ns <- asNamespace("dbrxr")
  old <- get(name, envir = ns)
  unlockBinding(name, ns)
  assign(name, value, envir = ns)
  withr::defer({
    assign(name, old, envir = ns)
    lockBinding(name, ns)
  }, envir = .env)
}

test_that("without any timeout set, DBI and Jobs API verbs end at their default deadline", {
  local_clean_config()
  srv <- local_stall_server()
  conn <- dbx_connect(host = srv$url, token = "dapi-stall-0123456789", cluster_id = "c-1")
  withr::defer(dbx_disconnect(conn))
  # The defaults are an hour and 60 s: 2 s here, so that the test is quick.
  local_package_value("dbi_timeout_default", 2)
  local_package_value("api_timeout_default", 2)
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  took <- elapsed(expect_error(DBI::dbGetQuery(con, "SELECT 1 AS x"), class = "dbrxr_timeout_error"))
  expect_lt(took, 2 + 4)
  took <- elapsed(expect_error(dbx_run(1, conn = conn), class = "dbrxr_timeout_error"))
  expect_lt(took, 2 + 4)
})
