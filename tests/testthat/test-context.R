# The connection's execution context: lazy, reused, recreated, destroyed.
# Clusters of their own: the tests count contexts from zero and evict them.

test_that("the context is created lazily and reused by every call", {
  conn <- local_test_cluster()
  expect_identical(local_stats(conn)$contexts$created, 0)
  expect_null(rust_session_info(conn$handle)$value$context_id)
  for (i in 1:3) dbx_exec("pass", conn)
  expect_identical(local_stats(conn)$contexts$created, 1)
  expect_true(nzchar(unwrap(rust_session_info(conn$handle))$context_id))
})

test_that("an evicted context is recreated transparently", {
  conn <- local_test_cluster()
  first <- exec_command(conn, "pass")$context_id
  evicted <- local_evict(conn)
  expect_true(first %in% evicted)
  res <- exec_command(conn, "print('back')")
  expect_identical(res$data, "back")
  expect_false(identical(res$context_id, first))
  expect_identical(local_stats(conn)$contexts$created, 2)
})

test_that("disconnect destroys the context and removes the session's staged files: no orphans", {
  owner <- local_test_cluster(token = "context-test-token-0123456789")
  conn <- dbx_connect(host = owner$local_info$url, token = "context-test-token-0123456789",
                      cluster_id = owner$local_info$cluster_id)
  dbx_exec("pass", conn)
  staged <- stage_bytes(conn, as.raw(1:100), "session")
  expect_identical(stage_fetch(owner, staged$path), as.raw(1:100))
  expect_identical(local_stats(owner)$contexts$alive, 1)
  dbx_disconnect(conn)
  s <- local_stats(owner)
  expect_identical(s$contexts$alive, 0)
  expect_identical(s$contexts$destroyed, s$contexts$created)
  expect_error(stage_fetch(owner, staged$path), class = "dbrxr_http_404")
})

test_that("a garbage-collected connection leaves no context behind", {
  owner <- local_test_cluster(token = "gc-test-token-0123456789abcd")
  local({
    conn <- dbx_connect(host = owner$local_info$url, token = "gc-test-token-0123456789abcd",
                        cluster_id = owner$local_info$cluster_id)
    dbx_exec("pass", conn)
  })
  expect_identical(local_stats(owner)$contexts$alive, 1)
  gc()
  gc()
  expect_identical(local_stats(owner)$contexts$alive, 0)
})

test_that("an R session that ends without disconnecting leaves no context behind", {
  skip_if_not_installed("callr")
  owner <- local_test_cluster(token = "exit-test-token-0123456789abc")
  callr::r(function(url, token, cluster_id) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    dbx_exec("pass", conn)
    stage_path <- dbrxr:::stage_bytes(conn, as.raw(1:3), "session")$path
    invisible(stage_path)
  }, args = list(owner$local_info$url, "exit-test-token-0123456789abc",
                 owner$local_info$cluster_id),
  env = c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)))
  s <- local_stats(owner)
  expect_identical(s$contexts$created, 1)
  expect_identical(s$contexts$alive, 0)
})
