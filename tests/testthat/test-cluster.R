# Cluster ensure-running and dbx_cluster_status().
# Clusters of their own: each test sets the cluster's state.

test_that("a TERMINATED cluster is started by the first call", {
  conn <- local_test_cluster(cluster_state = "TERMINATED", start_delay_ms = 800)
  expect_identical(dbx_cluster_status(conn)$state, "TERMINATED")
  expect_identical(dbx_exec("print('up')", conn), "up")
  st <- dbx_cluster_status(conn)
  expect_identical(st$state, "RUNNING")
  expect_identical(local_stats(conn)$routes[["POST /api/2.1/clusters/start"]]$count, 1)
})

test_that("a restart in the middle of a session is survived by the next call", {
  conn <- local_test_cluster(start_delay_ms = 500)
  dbx_exec("x = 1", conn)
  local_restart(conn)
  expect_identical(dbx_exec("print('after restart')", conn), "after restart")
  expect_identical(local_stats(conn)$contexts$created, 2)
})

test_that("the cluster timeout gives dbrxr_timeout_error with the last state", {
  conn <- local_test_cluster(cluster_state = "TERMINATED", start_delay_ms = 10000,
                             cluster_timeout = 0.5)
  e <- expect_error(dbx_exec("pass", conn), class = "dbrxr_timeout_error")
  expect_identical(e$last_status, "PENDING")
  expect_match(conditionMessage(e), "cluster_timeout")
})

test_that("an unknown cluster id is a dbrxr_cluster_error saying what to check", {
  owner <- local_test_cluster(token = "cluster-test-token-0123456789")
  conn <- dbx_connect(host = owner$local_info$url, token = "cluster-test-token-0123456789",
                      cluster_id = "no-such-cluster")
  on.exit(dbx_disconnect(conn))
  e <- expect_error(dbx_exec("pass", conn), class = "dbrxr_cluster_error")
  expect_match(conditionMessage(e), "cluster_id")
})

test_that("dbx_cluster_status reports and prints the state", {
  conn <- local_test_cluster()
  st <- dbx_cluster_status(conn)
  expect_s3_class(st, "dbx_cluster_status")
  expect_identical(st$cluster_id, conn$local_info$cluster_id)
  expect_identical(st$state, "RUNNING")
  expect_output(print(st), "state:\\s+RUNNING")
})

test_that("progress = TRUE shows the cluster's state while it starts; FALSE shows nothing", {
  conn <- local_test_cluster(cluster_state = "TERMINATED", start_delay_ms = 1500, progress = TRUE)
  shown <- character()
  withCallingHandlers(dbx_exec("pass", conn), message = function(m) {
    shown <<- c(shown, conditionMessage(m))
    invokeRestart("muffleMessage")
  })
  expect_true(any(grepl("is PENDING", shown)))
  quiet <- local_test_cluster(cluster_state = "TERMINATED", start_delay_ms = 1500, progress = FALSE)
  expect_silent(dbx_exec("pass", quiet))
})
