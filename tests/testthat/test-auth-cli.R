# auth_type = "databricks-cli": tokens come from `databricks auth token`. The CLI is
# replaced by a script that honours its contract (JSON on stdout), and the local
# cluster checks the token on every request.
write_fake_cli <- function(dir, token, expiry = "2099-01-01T00:00:00Z", fail = FALSE) {
  path <- file.path(dir, "databricks")
  log <- file.path(dir, "calls.log")
  body <- if (fail) {
    c("echo 'Error: cannot load Databricks config file: refresh token is invalid' >&2", "exit 1")
  } else {
    sprintf("printf '{\"access_token\": \"%s\", \"token_type\": \"Bearer\", \"expiry\": \"%s\"}\\n'",
            token, expiry)
  }
  writeLines(c("#!/bin/sh", sprintf("echo \"$@\" >> '%s'", log), body), path)
  Sys.chmod(path, "0755")
  list(path = path, log = log)
}

test_that("databricks-cli auth runs `databricks auth token` once and uses its token", {
  token <- "cli-token-0123456789abcdef"
  server <- local_test_cluster(token = token)
  dir <- withr::local_tempdir()
  cli <- write_fake_cli(dir, token)
  local_clean_config()
  withr::local_envvar(DATABRICKS_CLI_PATH = cli$path)
  conn <- dbx_connect(host = server$local_info$url, cluster_id = server$local_info$cluster_id,
                      auth_type = "databricks-cli")
  withr::defer(dbx_disconnect(conn))
  expect_equal(conn$info$auth_type, "databricks-cli")
  # Lazy: connecting did not run the CLI.
  expect_false(file.exists(cli$log))
  expect_equal(dbx_exec("print(6 * 7)", conn = conn), "42")
  expect_equal(dbx_exec("print(1)", conn = conn), "1")
  calls <- readLines(cli$log)
  expect_length(calls, 1)
  expect_match(calls, paste0("auth token --host ", server$local_info$url), fixed = TRUE)
})

test_that("without a token, databricks-cli is used when the CLI is on PATH", {
  local_clean_config()
  dir <- withr::local_tempdir()
  write_fake_cli(dir, "whatever")
  withr::local_envvar(PATH = paste(dir, "/usr/bin:/bin", sep = ":"))
  conn <- dbx_connect(host = "h.example.com", cluster_id = "c")
  expect_equal(conn$info$auth_type, "databricks-cli")
})

test_that("a failing CLI gives an auth error that says to log in", {
  server <- local_test_cluster()
  dir <- withr::local_tempdir()
  cli <- write_fake_cli(dir, "unused", fail = TRUE)
  local_clean_config()
  withr::local_envvar(DATABRICKS_CLI_PATH = cli$path)
  conn <- dbx_connect(host = server$local_info$url, cluster_id = server$local_info$cluster_id,
                      auth_type = "databricks-cli")
  withr::defer(dbx_disconnect(conn))
  err <- expect_error(dbx_exec("print(1)", conn = conn), class = "dbrxr_auth_error")
  expect_match(conditionMessage(err), "refresh token is invalid")
  expect_match(conditionMessage(err), "databricks auth login --host")
})
