# One default connection: set explicitly, or the first connection made while
# none is open; never a second cluster started implicitly.

# Python processes whose parent is this R process (the local cluster's contexts).
context_processes <- function() {
  out <- suppressWarnings(system2("ps", c("-o", "pid=,comm=", "--ppid", Sys.getpid()),
                                  stdout = TRUE, stderr = FALSE))
  sum(grepl("python", out))
}

test_that("after conn <- local_cluster(), verbs without conn use it (one worker)", {
  skip_if_no_local_cluster()
  local_clean_config()
  withr::local_options(dbrxr.connection = NULL)
  before <- context_processes()
  conn <- local_cluster(python = local_python())
  withr::defer(dbx_disconnect(conn))
  expect_identical(dbx_default_connection(), conn)
  expect_identical(remote_eval(1), 1)
  expect_identical(remote_eval(sum(1:10)), 55L)
  expect_equal(dbrxr:::local_stats(conn)$contexts$created, 1)
  expect_identical(context_processes() - before, 1L)
})

test_that("the first connection of the session says it is the default, once", {
  local_clean_config()
  withr::local_options(dbrxr.connection = NULL)
  state <- dbrxr:::the
  old <- state$default_announced
  state$default_announced <- NULL
  withr::defer(state$default_announced <- old)
  expect_message(a <- dbx_connect(host = "h.example.com", token = "t", cluster_id = "c"),
                 class = "dbrxr_default_connection_message")
  expect_identical(dbx_default_connection(), a)
  # A second connection while the first is open is not the default.
  expect_no_message(b <- dbx_connect(host = "h2.example.com", token = "t", cluster_id = "c"))
  expect_identical(dbx_default_connection(), a)
  # Set explicitly; the previous one comes back invisibly.
  expect_identical(dbx_default_connection(b), a)
  expect_identical(dbx_default_connection(), b)
  dbx_disconnect()  # closes the default
  expect_true(b$closed)
  expect_false(a$closed)
  dbx_disconnect(a)
})

test_that("dbx_disconnect() with nothing open does nothing (no cluster started)", {
  local_clean_config()
  withr::local_options(dbrxr.connection = NULL)
  before <- context_processes()
  expect_null(dbx_disconnect())
  expect_null(getOption("dbrxr.connection"))
  expect_identical(context_processes(), before)
})

test_that("dbx_default_connection() checks what it is given", {
  expect_error(dbx_default_connection("conn"), class = "dbrxr_input_error")
})
