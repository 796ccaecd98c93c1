# dbx_exec() and exec_command() against a real local cluster.
# Clusters of their own: tests count status checks and cancelled commands from
# zero (local_stats()).

test_that("dbx_exec returns text with the Out[n] prompt stripped", {
  conn <- local_test_cluster()
  expect_identical(dbx_exec("print(1 + 1)", conn), "2")
  expect_identical(dbx_exec("x = 40\nx + 2", conn), "42")
  expect_identical(dbx_exec("pass", conn), "")
  # State lives in the one context of the connection.
  expect_identical(dbx_exec("x", conn), "40")
})

test_that("exec_command returns the raw result with context and command ids", {
  conn <- local_test_cluster()
  res <- exec_command(conn, "print('hi')")
  expect_identical(res$status, "Finished")
  expect_identical(res$resultType, "text")
  expect_identical(res$data, "hi")
  expect_false(res$truncated)
  expect_true(nzchar(res$context_id))
  expect_true(nzchar(res$command_id))
  expect_true(all(c("summary", "cause") %in% names(res)))
  expect_identical(exec_command(conn, "1")$context_id, res$context_id)
})

test_that("a Python exception is a dbrxr_remote_python_error with clean summary and cause", {
  conn <- local_test_cluster()
  e <- expect_error(dbx_exec("1/0", conn), class = "dbrxr_remote_python_error")
  expect_s3_class(e, "dbrxr_error")
  expect_match(e$summary, "ZeroDivisionError: division by zero", fixed = TRUE)
  expect_match(e$cause, "Traceback", fixed = TRUE)
  expect_false(grepl("<span|\033\\[", paste(e$summary, e$cause)))
  expect_match(conditionMessage(e), "ZeroDivisionError")
  # The context survives the error.
  expect_identical(dbx_exec("print('ok')", conn), "ok")
})

test_that("the warm round trip polls adaptively: one or two status checks for `pass`", {
  conn <- local_test_cluster()
  dbx_exec("pass", conn)
  before <- local_stats(conn)$routes[["GET /api/1.2/commands/status"]]$count
  for (i in 1:20) dbx_exec("pass", conn)
  after <- local_stats(conn)$routes[["GET /api/1.2/commands/status"]]$count
  expect_lte(after - before, 40)
})

test_that("timeout = 1 on a long command gives dbrxr_timeout_error and a cancelled command", {
  conn <- local_test_cluster()
  dbx_exec("pass", conn)
  t0 <- Sys.time()
  e <- expect_error(dbx_exec("import time; time.sleep(30)", conn, timeout = 1),
                    class = "dbrxr_timeout_error")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 5)
  expect_identical(e$last_status, "Running")
  expect_identical(e$final_status, "Cancelled")
  expect_gte(local_stats(conn)$commands$Cancelled, 1)
  expect_identical(dbx_exec("print('next')", conn), "next")
})

test_that("an interrupt from outside cancels the command on the cluster within 2 s; the connection goes on", {
  skip_if_not_installed("callr")
  conn <- local_test_cluster(token = "interrupt-test-token-0123456789")
  url <- conn$local_info$url
  child <- callr::r_bg(function(url, token, cluster_id) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    dbx_exec("pass", conn)
    said <- character()
    r <- withCallingHandlers(
      tryCatch(dbx_exec("import time; time.sleep(60)", conn),
               interrupt = function(e) "interrupted"),
      dbrxr_cancelled_message = function(m) {
        said <<- c(said, conditionMessage(m))
        invokeRestart("muffleMessage")
      })
    list(r = r, said = said, after = dbx_exec("print('again')", conn))
  }, args = list(url, "interrupt-test-token-0123456789", conn$local_info$cluster_id),
  env = c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)))
  on.exit(child$kill(), add = TRUE)
  # The long command is the second one.
  res <- interrupt_running_child(child, conn, executed = 2, start_within = 30, settle = 0.3,
                                 wait_ms = 20000)
  expect_identical(res$r, "interrupted")
  # The user is told what happened to the command (once).
  expect_length(res$said, 1)
  expect_match(res$said, "the remote command was cancelled on the cluster", fixed = TRUE)
  expect_identical(res$after, "again")
})

test_that("tables become data frames", {
  res <- list(resultType = "table",
              schema = list(list(name = "id", type = "int"), list(name = "x", type = "\"double\""),
                            list(name = "s", type = "string"), list(name = "b", type = "boolean")),
              isJsonSchema = TRUE,
              data = list(list(1, 1.5, "a", TRUE), list(2, NULL, NULL, FALSE)))
  df <- exec_table(res)
  expect_identical(df, data.frame(id = 1:2, x = c(1.5, NA), s = c("a", NA), b = c(TRUE, FALSE)))
  empty <- exec_table(list(schema = list(list(name = "id", type = "bigint")), data = list()))
  expect_identical(nrow(empty), 0L)
  expect_type(empty$id, "double")
})

test_that("bad arguments are input errors before any network call", {
  conn <- dbx_connect(host = "https://example.invalid", token = "t", cluster_id = "c")
  on.exit(dbx_disconnect(conn))
  expect_error(dbx_exec(1, conn), class = "dbrxr_input_error")
  expect_error(dbx_exec("1", conn, language = "cobol"), class = "dbrxr_input_error")
  expect_error(dbx_exec("1", conn, timeout = -1), class = "dbrxr_input_error")
  expect_error(dbx_exec("1", "not a connection"), class = "dbrxr_input_error")
})
