# What users read: a snapshot of every condition class dbrxr raises, each
# triggered for real (on a local cluster where it needs one). Ports, ids,
# hashes, paths and timings are scrubbed so snapshots are stable.
file_env <- environment()


snap_conn <- function() remote_test_conn(file_env)

test_that("input errors name the argument, the value and the fix", {
  local_clean_config()
  expect_snapshot(error = TRUE, transform = scrub, {
    remote_score(mtcars, lm(mpg ~ wt, mtcars))
    remote_score(structure(list(), class = "no_method_here"), mtcars)
    dbx_connect(hots = "x")
    local_cluster(prot = 1)
    dbx_connect(host = "dbc-1.cloud.databricks.com", token = "", cluster_id = "c")
    remote_eval(1, conn = "my connection")
    remote_eval("1 + 1", substitute = FALSE, timeout = "soon")
    remote_eval(list(1), substitute = FALSE)
    dbx_default_connection(42)
  })
})

test_that("a connection or an external pointer among the globals", {
  local_clean_config()
  conn <- snap_conn()
  other <- conn
  ptr <- list(con = structure(list(), conn_id = new("externalptr")))
  expect_snapshot(error = TRUE, transform = scrub, {
    remote_eval(dbx_exec("1", other), conn)
    remote_eval(length(ptr), conn)
  })
})

test_that("size: too large payloads and captured environments", {
  conn <- snap_conn()
  fit <- eval(quote(lm(mpg ~ wt, data = mtcars)), globalenv())
  fit$extra <- double(2^28)
  # The small parts' sizes vary by a few hundred bytes between R sessions (a
  # testthat worker process gives `model$model` 8.1 KB, the main one 7.4 KB).
  small_kb <- function(x) gsub("\\([0-9.]+ KB\\)", "(N KB)", scrub(x))
  expect_snapshot(error = TRUE, transform = small_kb, remote_score(fit, mtcars, conn = conn))
  rm(fit)
  f <- eval(quote(function() {
    junk <- runif(2^18)
    d <- mtcars
    lm(mpg ~ wt, data = d)
  }), globalenv())
  lookup <- runif(3e5)
  g <- function(i) lookup[i]
  withr::local_options(dbrxr.size_notice_bytes = 1e6)
  expect_snapshot(transform = scrub, {
    invisible(dbrxr:::as_remote_model(f()))
    invisible(remote_function(g, conn))
  })
})

test_that("configuration and authentication errors", {
  local_clean_config()
  expect_snapshot(error = TRUE, transform = scrub, {
    dbx_connect()
    dbx_connect(host = "https://example.invalid", auth_type = "kerberos", token = "x",
                cluster_id = "c")
    dbx_connect(host = "h", cluster_id = "c")
  })
  lc <- local_test_cluster(token = "snap-token")
  bad <- dbx_connect(host = lc$local_info$url, token = "wrong-token", cluster_id = "local-cluster")
  withr::defer(dbx_disconnect(bad))
  expect_snapshot(error = TRUE, transform = scrub, dbx_exec("pass", bad))
})

test_that("HTTP, cluster and network errors", {
  local_clean_config()
  lc <- local_test_cluster(token = "snap-token")
  nocluster <- dbx_connect(host = lc$local_info$url, token = "snap-token",
                           cluster_id = "no-such-cluster")
  withr::defer(dbx_disconnect(nocluster))
  expect_error(dbx_exec("pass", nocluster), class = "dbrxr_cluster_error")
  url <- local({
    gone <- local_test_cluster()
    gone$local_info$url
  })
  unreachable <- dbx_connect(host = url, token = "t", cluster_id = "c")
  withr::defer(dbx_disconnect(unreachable))
  expect_snapshot(error = TRUE, transform = scrub, {
    dbx_exec("pass", nocluster)
    dbx_download("/no/such/file.bin", tempfile(), conn = lc)
    dbx_cluster_status(unreachable)
  })
})

test_that("errors while running code: Python, R, timeout, missing packages", {
  conn <- snap_conn()
  expect_snapshot(error = TRUE, transform = scrub, {
    dbx_exec("1/0", conn)
    remote_eval(stop("the data has no rows"), conn)
    remote_eval(log(-1), conn)
    remote_eval(Sys.sleep(30), conn, timeout = 1)
    remote_eval(notapkg123::f(1), conn)
  })
})

test_that("messages and warnings replayed from the cluster", {
  conn <- snap_conn()
  expect_snapshot(transform = scrub, {
    remote_eval({ message("reading 3 files"); warning("2 rows dropped"); 1 }, conn)
    remote_eval(as.integer("x"), conn)
  })
})

# (dbrxr_cancelled_error is not reachable from the R API: an interrupt cancels
# the remote command, then R's own interrupt is re-raised; see test-exec.R.)
test_that("local cluster, context, io and internal errors", {
  conn <- snap_conn()
  nopy <- withr::local_tempfile()
  writeLines(c("#!/bin/sh", "exec python3 -S \"$@\""), nopy)
  Sys.chmod(nopy, "755")
  expect_snapshot(transform = scrub, {
    norpy <- local_cluster(python = nopy)
  })
  withr::defer(dbx_disconnect(norpy))
  port <- as.integer(sub(".*:", "", conn$local_info$url))
  expect_snapshot(error = TRUE, transform = scrub, {
    remote_eval(1, norpy)
    local_cluster(port = port)
    dbrxr:::unwrap(dbrxr:::rust_sha256_file("/no/such/file"))
    dbrxr:::unwrap(list())
  })
})

test_that("a local connection prints as a local cluster", {
  conn <- snap_conn()
  expect_snapshot(print(conn), transform = function(x) {
    x <- scrub(x)
    x <- gsub("python: .*", "python: PYTHON", x)
    gsub("state: .*", "state: DIR", x)
  })
})

test_that("the default connection, truncated output and package versions", {
  local_clean_config()
  state <- dbrxr:::the
  old <- state$default_announced
  state$default_announced <- NULL
  withr::defer(state$default_announced <- old)
  expect_snapshot({
    small <- local_cluster(python = local_python(), max_output_chars = 100)
  })
  withr::defer(dbx_disconnect(small))
  expect_snapshot(x <- dbx_exec("print('x' * 500)", small))

  conn <- snap_conn()
  model <- local_version_mismatch(conn, "dbrxrtinysnap")
  expect_snapshot(remote_score(model, 1:2, conn = conn))
})

test_that("a cluster that does not start in time (a timeout); the implicit local default", {
  local_clean_config()
  withr::local_options(dbrxr.connection = NULL)
  slow <- local_test_cluster(cluster_state = "TERMINATED", start_delay_ms = 5000,
                             cluster_timeout = 0.2)
  expect_snapshot(error = TRUE, transform = scrub, dbx_exec("pass", slow))
  # No connection and no workspace configured: a local cluster, said once.
  withr::local_options(dbrxr.connection = NULL)
  expect_snapshot(conn <- dbx_default_connection())
  withr::defer(dbx_disconnect(conn))
  expect_s3_class(conn, "dbx_local_connection")
  expect_identical(dbx_default_connection(), conn)
})
