# The local cluster from R: start/stop, options, control routes, and a real
# Python + rpy2 + R round trip through its contexts.
# Each test starts clusters of its own: they are what is tested (options,
# stats from zero, faults, restarts, termination).

server_up <- function(url) {
  res <- tryCatch(curlGetHeaders(paste0(url, "/oidc/.well-known/oauth-authorization-server")),
                  error = function(e) NULL)
  !is.null(res) && identical(attr(res, "status"), 200L)
}

test_that("local_cluster() returns a local connection and dbx_disconnect() stops it", {
  skip_if_no_rpy2()
  conn <- local_cluster(python = local_python())
  expect_s3_class(conn, c("dbx_local_connection", "dbx_connection"))
  li <- conn$local_info
  expect_match(li$url, "^http://127\\.0\\.0\\.1:[0-9]+$")
  expect_equal(li$cluster_id, "local-cluster")
  expect_true(li$rpy2)
  expect_true(dir.exists(li$state_dir))
  expect_equal(conn$info$auth_type, "pat")
  expect_equal(conn$info$host, li$url)
  out <- format(conn)
  expect_match(out[1], "local cluster")
  expect_true(any(grepl("with rpy2", out)))
  expect_true(server_up(li$url))
  dbx_disconnect(conn)
  expect_false(server_up(li$url))
  expect_false(dir.exists(li$state_dir))
  # Stopping again is harmless.
  expect_false(dbrxr:::local_cluster_stop(conn$local))
})

test_that("options are validated before anything starts", {
  expect_error(local_cluster(colour = "red"), class = "dbrxr_input_error")
  expect_error(local_cluster(cluster_state = "PAUSED"), class = "dbrxr_input_error")
  expect_error(local_cluster(client_id = "id"), class = "dbrxr_input_error")
  expect_error(local_cluster(port = 70000), class = "dbrxr_input_error")
  expect_error(local_cluster(port = 1.5), class = "dbrxr_input_error")
  expect_error(local_cluster(max_contexts = 0), class = "dbrxr_input_error")
  expect_error(local_cluster(poll_max = "fast"), class = "dbrxr_input_error")
  expect_error(local_cluster(python = 3), class = "dbrxr_input_error")
  expect_error(local_cluster("x"), class = "dbrxr_error")
  # Names and values are checked by the one option table (in Rust), before anything starts.
  err <- expect_error(local_cluster(max_contexts = 0), class = "dbrxr_input_error")
  expect_match(conditionMessage(err), "`max_contexts` must be a whole number >= 1, not 0", fixed = TRUE)
  err <- expect_error(local_cluster(cluster_state = "paused"), class = "dbrxr_input_error")
  expect_match(conditionMessage(err), "one of RUNNING, TERMINATED", fixed = TRUE)
  expect_error(local_cluster(max_contexts = c(1, 2)), class = "dbrxr_input_error")
  expect_error(local_cluster(token_ttl_s = "soon"), class = "dbrxr_input_error")
  err <- expect_error(local_cluster(max_contxts = 3), class = "dbrxr_input_error")
  expect_match(conditionMessage(err), "max_contexts", fixed = TRUE)
})

test_that("the option table gives local_cluster() its options and docs", {
  t <- dbrxr:::local_option_table()
  expect_true(all(c("max_contexts", "data_security_mode", "readonly_staging") %in% t$name))
  expect_equal(t$flag[t$name == "max_contexts"], "--max-contexts")
  doc <- paste(dbrxr:::local_options_doc(), collapse = "\n")
  for (nm in dbrxr:::local_server_options()) expect_match(doc, sprintf("`%s`", nm), fixed = TRUE)
  rd_file <- test_path("../../man/local_cluster.Rd")
  skip_if_not(file.exists(rd_file), "no source checkout")
  rd <- paste(readLines(rd_file), collapse = "\n")
  for (nm in dbrxr:::local_server_options()) expect_match(rd, sprintf("\\code{%s}", nm), fixed = TRUE)
})

test_that("contexts of the in-process local cluster do not see the client's credentials", {
  skip_if_no_rpy2()
  withr::local_envvar(DATABRICKS_TOKEN = "dapi-secret-1", DATABRICKS_CLIENT_SECRET = "secret-2",
                      DATABRICKS_PASSWORD = "pw-3", DBRXR_LOCAL_TOKEN = "tok-4",
                      DATABRICKS_HOST = "https://example.cloud.databricks.com")
  conn <- local_test_cluster()
  seen <- remote_eval(Sys.getenv(c("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET",
                                   "DATABRICKS_PASSWORD", "DBRXR_LOCAL_TOKEN")), conn = conn)
  expect_equal(unname(seen), rep("", 4))
  # Nor its other settings: the environment is allow-listed (test-security-env.R).
  expect_false(identical(remote_eval(Sys.getenv("DATABRICKS_HOST"), conn = conn),
                         "https://example.cloud.databricks.com"))
})

test_that("a Python that cannot run is a local cluster error", {
  expect_error(local_cluster(python = "/nonexistent/python3"), class = "dbrxr_local_cluster_error")
})

test_that("several local clusters run at once, each with its own settings", {
  a <- local_test_cluster(cluster_id = "a-cluster", token = "tok-a")
  b <- local_test_cluster(cluster_state = "TERMINATED")
  expect_false(identical(a$local_info$url, b$local_info$url))
  expect_equal(a$local_info$cluster_id, "a-cluster")
  expect_equal(dbx_cluster_status(a)$state, "RUNNING")
  expect_equal(dbx_cluster_status(b)$state, "TERMINATED")
})

test_that("the local cluster stands in for a shared cluster and a read-only staging location", {
  shared <- local_test_cluster(data_security_mode = "user_isolation")
  expect_equal(dbx_cluster_status(shared)$data_security_mode, "USER_ISOLATION")
  expect_error(local_cluster(data_security_mode = "SHARED_PLEASE"), class = "dbrxr_input_error")
  expect_error(local_cluster(readonly_staging = "ro/"), class = "dbrxr_input_error")
  skip_if_no_rpy2()
  ro <- local_test_cluster(readonly_staging = "dbfs:/tmp/dbrxr/") # the default staging
  big <- stats::runif(3e5) # 2.4 MB: staged, not inline, so the upload is refused
  err <- expect_error(remote_eval(sum(big), conn = ro), class = "dbrxr_http_403")
  expect_equal(err$error_code, "PERMISSION_DENIED")
})

test_that("garbage collection stops an unreferenced local cluster", {
  skip_if_no_rpy2()
  url <- local({
    conn <- local_cluster(python = local_python())
    dbx_default_connection(NULL)  # the default connection is referenced by an option
    conn$local_info$url
  })
  expect_true(server_up(url))
  gc()
  gc()
  expect_false(server_up(url))
})

test_that("an R round trip through rpy2 runs in a context", {
  conn <- local_test_cluster()
  out <- dbx_exec("import rpy2.robjects as ro; print(ro.r('R.version.string')[0])", conn)
  expect_match(paste(unlist(out), collapse = ""), "^R version")
  out <- dbx_exec("import os; print(os.environ['DBRXR_LOCAL_FS_ROOT'])", conn)
  expect_match(paste(unlist(out), collapse = ""), conn$local_info$state_dir, fixed = TRUE)
})

test_that("local_stats() counts requests per route template, bytes, contexts and commands", {
  conn <- local_test_cluster()
  dbx_exec("print(1)", conn)
  s <- local_stats(conn)
  expect_named(s, c("bytes_in", "bytes_out", "commands", "contexts", "faults_injected", "routes"),
               ignore.order = TRUE)
  expect_gte(s$routes[["POST /api/1.2/commands/execute"]]$count, 1)
  expect_gte(s$routes[["POST /api/1.2/contexts/create"]]$count, 1)
  expect_gt(s$bytes_in, 0)
  expect_gt(s$bytes_out, 0)
  expect_gte(s$commands$executed, 1)
  expect_gte(s$commands$Finished, 1)
  expect_equal(s$contexts$alive, s$contexts$created - s$contexts$destroyed)
  expect_equal(s$faults_injected, 0)
})

test_that("local_faults() injects 429s that the client retries through", {
  conn <- local_test_cluster()
  dbx_exec("pass", conn)
  local_faults(conn, status_429_rate = 0.5, seed = 3)
  for (i in 1:3) expect_equal(paste(unlist(dbx_exec(sprintf("print(%d)", i), conn)), collapse = ""),
                              as.character(i))
  local_faults(conn)
  s <- local_stats(conn)
  expect_gt(s$faults_injected, 0)
  expect_equal(s$commands$executed, s$commands$Finished)
  expect_error(local_faults(conn, drop_rate = 2), class = "dbrxr_input_error")
})

test_that("local_restart() loses every context; local_evict() evicts idle ones", {
  conn <- local_test_cluster()
  dbx_exec("x = 1", conn)
  before <- local_stats(conn)$contexts
  expect_equal(before$alive, 1)
  local_restart(conn)
  after <- local_stats(conn)$contexts
  expect_equal(after$alive, 0)
  expect_equal(after$destroyed, before$destroyed + 1)
  # The client recreates its context after the restart.
  expect_equal(paste(unlist(dbx_exec("print(2)", conn)), collapse = ""), "2")
  expect_length(local_evict(conn), 1)
  expect_equal(local_stats(conn)$contexts$alive, 0)
})

test_that("local_terminate() terminates the cluster", {
  conn <- local_test_cluster()
  local_terminate(conn)
  expect_equal(dbx_cluster_status(conn)$state, "TERMINATED")
})

test_that("control helpers refuse connections that are not local", {
  conn <- dbx_connect(host = "https://example.invalid", token = "t", cluster_id = "c")
  on.exit(dbx_disconnect(conn))
  expect_error(local_stats(conn), class = "dbrxr_input_error")
})

test_that("with client_id and client_secret the connection uses OAuth M2M", {
  conn <- local_test_cluster(client_id = "sp-id", client_secret = "sp-secret", token_ttl_s = 120)
  expect_equal(conn$info$auth_type, "oauth-m2m")
  expect_equal(dbx_cluster_status(conn)$state, "RUNNING")
  s <- local_stats(conn)
  expect_gte(s$routes[["POST /oidc/v1/token"]]$count, 1)
})
