test_that("explicit arguments beat environment variables, which beat the profile", {
  home <- local_clean_config()
  write_databrickscfg(home, c("[DEFAULT]", "host = file.example.com",
                              "token = dapi-file-token-000000000", "cluster_id = c-file"))
  conn <- dbx_connect()
  expect_equal(conn$info$host, "https://file.example.com")
  expect_equal(conn$info$cluster_id, "c-file")
  expect_match(conn$info$sources$host, "^profile DEFAULT of")

  withr::local_envvar(DATABRICKS_CLUSTER_ID = "c-env")
  conn <- dbx_connect()
  expect_equal(conn$info$cluster_id, "c-env")
  expect_equal(conn$info$sources$cluster_id, "environment variable DATABRICKS_CLUSTER_ID")

  conn <- dbx_connect(cluster_id = "c-arg")
  expect_equal(conn$info$cluster_id, "c-arg")
  expect_equal(conn$info$sources$cluster_id, "argument")
})

test_that("a host in the environment suppresses the file unless a profile is requested", {
  home <- local_clean_config()
  write_databrickscfg(home, c("[DEFAULT]", "token = t-default", "cluster_id = c1",
                              "[dev]", "token = t-dev", "cluster_id = c2"))
  withr::local_envvar(DATABRICKS_HOST = "h.example.com")
  expect_error(dbx_connect(), class = "dbrxr_auth_error")
  withr::local_envvar(DATABRICKS_CONFIG_PROFILE = "dev")
  conn <- dbx_connect()
  expect_equal(conn$info$cluster_id, "c2")
  expect_equal(conn$info$profile, "dev")
})

test_that("[__settings__] default_profile is honoured and missing profiles are errors", {
  home <- local_clean_config()
  write_databrickscfg(home, c("[__settings__]", "default_profile = dev",
                              "[DEFAULT]", "host = a", "token = t", "cluster_id = c",
                              "[dev]", "host = b.example.com", "token = t2", "cluster_id = c2"))
  expect_equal(dbx_connect()$info$host, "https://b.example.com")
  err <- expect_error(dbx_connect(profile = "prod"), class = "dbrxr_config_error")
  expect_match(conditionMessage(err), "Profile `prod` does not exist")
  expect_match(conditionMessage(err), "DEFAULT, dev")
  expect_equal(err$profile, "prod")
})

test_that("a named profile with no config file is an error; DATABRICKS_CONFIG_FILE is used", {
  home <- local_clean_config()
  expect_error(dbx_connect(profile = "dev"), class = "dbrxr_config_error")
  other <- file.path(home, "other.cfg")
  writeLines(c("[dev]", "host = o.example.com", "token = tok", "cluster_id = c9"), other)
  withr::local_envvar(DATABRICKS_CONFIG_FILE = other, DATABRICKS_CONFIG_PROFILE = "dev")
  expect_equal(dbx_connect()$info$host, "https://o.example.com")
})

test_that("empty environment values count as unset; the prototype's variables come last", {
  local_clean_config()
  withr::local_envvar(DATABRICKS_HOST = "", DBRX_HOST = "legacy.example.com",
                      DBRX_API_TOKEN = "legacy-token", CLUSTER_ID = "legacy-cluster")
  conn <- dbx_connect()
  expect_equal(conn$info$host, "https://legacy.example.com")
  expect_equal(conn$info$cluster_id, "legacy-cluster")
  expect_equal(conn$info$sources$token, "environment variable DBRX_API_TOKEN (legacy)")
  withr::local_envvar(DATABRICKS_HOST = "new.example.com")
  expect_equal(dbx_connect()$info$host, "https://new.example.com")
})

test_that("hosts are normalised like the SDKs", {
  local_clean_config()
  host_of <- function(h) dbx_connect(host = h, token = "t", cluster_id = "c")$info$host
  expect_equal(host_of("adb-1.azuredatabricks.net"), "https://adb-1.azuredatabricks.net")
  expect_equal(host_of("https://x.cloud.databricks.com/"), "https://x.cloud.databricks.com")
  expect_equal(host_of("https://x.cloud.databricks.com/api/2.0/clusters"), "https://x.cloud.databricks.com")
  expect_equal(host_of("http://127.0.0.1:8080/"), "http://127.0.0.1:8080")
  expect_error(host_of("ftp://x"), class = "dbrxr_config_error")
})

test_that("two auth methods without auth_type is an error naming both", {
  local_clean_config()
  err <- expect_error(dbx_connect(host = "h", token = "t", client_id = "id",
                                  client_secret = "s", cluster_id = "c"),
                      class = "dbrxr_config_error")
  expect_match(conditionMessage(err), "pat and oauth-m2m")
  conn <- dbx_connect(host = "h", token = "t", client_id = "id", client_secret = "s",
                      cluster_id = "c", auth_type = "oauth-m2m")
  expect_equal(conn$info$auth_type, "oauth-m2m")
})

test_that("no auth method lists what was tried; unknown auth types are refused", {
  local_clean_config()
  err <- expect_error(dbx_connect(host = "h", cluster_id = "c"), class = "dbrxr_auth_error")
  expect_match(conditionMessage(err), "DATABRICKS_TOKEN")
  expect_match(conditionMessage(err), "DATABRICKS_CLIENT_ID")
  expect_match(conditionMessage(err), "databricks auth login")
  expect_error(dbx_connect(host = "h", token = "t", cluster_id = "c", auth_type = "kerberos"),
               class = "dbrxr_config_error")
  expect_error(dbx_connect(host = "h", client_id = "id", cluster_id = "c"),
               class = "dbrxr_auth_error")
})

test_that("nothing configured is a config error that points at local_cluster()", {
  local_clean_config()
  err <- expect_error(dbx_connect(), class = "dbrxr_config_error")
  expect_equal(err$not_configured, "true")
  expect_match(conditionMessage(err), "local_cluster")
  err <- expect_error(dbx_connect(host = "h", token = "t"), class = "dbrxr_config_error")
  expect_match(conditionMessage(err), "DATABRICKS_CLUSTER_ID")
})

test_that("bad arguments are input errors raised before anything else", {
  local_clean_config()
  expect_error(dbx_connect(host = 1), class = "dbrxr_input_error")
  expect_error(dbx_connect(token = c("a", "b")), class = "dbrxr_input_error")
  expect_error(dbx_connect(host = "h", token = "t", cluster_id = "c", poll_max = -1),
               class = "dbrxr_input_error")
  expect_error(dbx_connect(host = "h", token = "t", cluster_id = "c", bogus = 1),
               class = "dbrxr_input_error")
  expect_error(dbx_disconnect("not a connection"), class = "dbrxr_input_error")
})

test_that("print() and format() show where each value came from", {
  local_clean_config()
  withr::local_envvar(DATABRICKS_HOST = "h.example.com")
  conn <- dbx_connect(token = "dapi-abcdef0123456789", cluster_id = "c1")
  out <- format(conn)
  expect_match(out[2], "https://h.example.com  \\(environment variable DATABRICKS_HOST\\)")
  expect_match(out[3], "c1  \\(argument\\)")
  expect_match(out[4], "pat  \\(argument\\)")
  expect_output(print(conn), "<dbx_connection> workspace")
})

test_that("no secret appears in any printed, str() or error output", {
  home <- local_clean_config()
  token <- "dapiSUPERSECRET0123456789abcdef"
  secret <- "doseSUPERSECRETclientsecret42"
  write_databrickscfg(home, c("[DEFAULT]", "host = h.example.com", paste("token =", token),
                              paste("client_secret =", secret), "client_id = id", "cluster_id = c"))
  outputs <- character()
  grab <- function(expr) {
    out <- utils::capture.output(res <- tryCatch(expr, error = function(e) e), type = "output")
    msg <- if (inherits(res, "condition")) conditionMessage(res) else ""
    outputs <<- c(outputs, out, msg, if (inherits(res, "condition")) format(res))
    res
  }
  # The profile holds two methods: the error must not echo either secret.
  grab(dbx_connect())
  conn <- grab(dbx_connect(auth_type = "pat"))
  grab(print(conn))
  grab(str(conn))
  grab(print(unclass(conn$info)))
  grab(str(as.list(conn)))
  conn2 <- grab(dbx_connect(auth_type = "oauth-m2m"))
  grab(print(conn2))
  grab(dbx_connect(host = "h", token = token, client_id = "i", client_secret = secret,
                   cluster_id = "c"))
  expect_true(length(outputs) > 5)
  expect_false(any(grepl("SUPERSECRET", outputs)))
})

test_that("a closed connection is refused", {
  local_clean_config()
  conn <- dbx_connect(host = "h", token = "t", cluster_id = "c")
  dbx_disconnect(conn)
  expect_error(dbx_disconnect(conn), class = "dbrxr_input_error")
  expect_output(print(conn), "\\[closed\\]")
})

test_that("a bad port and a token with control characters fail at connect, without network I/O", {
  local_clean_config()
  t0 <- Sys.time()
  e <- expect_error(dbx_connect(host = "http://127.0.0.1:notaport", token = "t", cluster_id = "c"),
                    class = "dbrxr_config_error")
  expect_match(conditionMessage(e), "port")
  expect_error(dbx_connect(host = "http://127.0.0.1:70000", token = "t", cluster_id = "c"),
               class = "dbrxr_config_error")
  e <- expect_error(dbx_connect(host = "https://h.example.com", token = "dapiLINE\nBREAK",
                                cluster_id = "c"), class = "dbrxr_config_error")
  expect_false(grepl("LINE|BREAK", conditionMessage(e)))
  expect_error(dbx_connect(host = "https://h.example.com", token = "a\tb", cluster_id = "c"),
               class = "dbrxr_config_error")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 1)
})

test_that("credentials in the host URL are stripped with a warning and never shown", {
  home <- local_clean_config()
  secret <- "Qx7HOSTSECRETzz91"
  outputs <- character()
  grab <- function(expr) {
    out <- utils::capture.output(
      res <- withCallingHandlers(tryCatch(expr, error = function(e) e),
                                 warning = function(w) {
                                   outputs <<- c(outputs, conditionMessage(w), format(w))
                                   invokeRestart("muffleWarning")
                                 }), type = "output")
    msg <- if (inherits(res, "condition")) conditionMessage(res) else ""
    outputs <<- c(outputs, out, msg, if (inherits(res, "condition")) format(res))
    res
  }
  expect_warning(conn <- dbx_connect(host = paste0("https://user:", secret, "@h.example.com/"),
                                     token = "t", cluster_id = "c"),
                 class = "dbrxr_config_warning")
  on.exit(dbx_disconnect(conn))
  expect_identical(conn$info$host, "https://h.example.com")
  grab(print(conn))
  grab(str(conn))
  grab(print(unclass(conn$info)))
  grab(cat(format(conn), sep = "\n"))
  grab(summary(conn))
  grab(dbx_connect(host = paste0("https://user:", secret, "@bad host"), token = "t", cluster_id = "c"))
  grab(dbx_connect(host = paste0("http://user:", secret, "@127.0.0.1:notaport"), token = "t",
                   cluster_id = "c"))
  withr::local_envvar(DATABRICKS_HOST = paste0("https://", secret, "@h.example.com"),
                      DATABRICKS_TOKEN = "t", DATABRICKS_CLUSTER_ID = "c")
  conn2 <- grab(dbx_connect())
  grab(print(conn2))
  expect_gt(length(outputs), 8)
  expect_false(any(grepl("HOSTSECRET", outputs)))
})
