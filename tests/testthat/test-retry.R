# The transport's retries, through the local cluster's fault injection.

test_that("200 calls under 30% 429 and 10% 503 all succeed and each command runs once", {
  conn <- local_test_cluster()
  local_faults(conn, status_429_rate = 0.3, status_503_rate = 0.1, retry_after_s = 0, seed = 7)
  values <- vapply(1:200, function(i) dbx_exec(sprintf("print(%d * 2)", i), conn), "")
  expect_identical(values, as.character((1:200) * 2))
  local_faults(conn)
  s <- local_stats(conn)
  expect_identical(s$commands$executed, 200)
  expect_gt(s$faults_injected, 50)
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
