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
