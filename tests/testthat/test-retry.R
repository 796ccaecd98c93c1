# The transport's retries, through the local cluster's fault injection.

test_that("50 calls under 30% 429 and 10% 503 all succeed and each command runs once", {
  # 200 calls: test-slow-request-path.R.
  expect_commands_once_under_429_503(50)
})

test_that("a workspace that cannot be reached is a dbrxr_network_error, quickly", {
  port <- local({
    conn <- local_test_cluster()
    as.integer(sub(".*:", "", conn$local_info$url))
  })
  conn <- dbx_connect(host = sprintf("http://127.0.0.1:%d", port), token = "t", cluster_id = "c")
  on.exit(dbx_disconnect(conn))
  t0 <- Sys.time()
  e <- expect_error(dbx_cluster_status(conn), class = "dbrxr_network_error")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 10)
})
