# Inputs checked before the network (issue 23, item 7). The connections here
# point at a closed port: any network call would end in dbrxr_network_error,
# so an input error proves nothing was sent.

unreachable <- function(.env = parent.frame(), ...) {
  local_clean_config(.env = .env)
  conn <- dbx_connect(host = "http://127.0.0.1:9", token = "dapi-input-0123456789", cluster_id = "c", ...)
  withr::defer(dbx_disconnect(conn), envir = .env)
  conn
}

test_that("invalid UTF-8 in code, names or queries is a dbrxr_input_error", {
  conn <- unreachable()
  # print("\xff"): a latin1 byte that is not UTF-8, in a string of unknown encoding.
  bad <- rawToChar(as.raw(c(0x70, 0x72, 0x69, 0x6e, 0x74, 0x28, 0x22, 0xff, 0x22, 0x29)))
  e <- expect_error(dbx_exec(bad, conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "`code` is not valid UTF-8")
  expect_match(conditionMessage(e), "byte 8 of 10")
  expect_error(dbx_exec("1", conn, language = bad), class = "dbrxr_input_error")
  expect_error(dbx_read_table(paste0("main.s.t", bad), conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_sql(bad), class = "dbrxr_input_error")
  expect_error(dbx_upload(as.raw(1:3), paste0("dbfs:/tmp/", bad), conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_connect(host = "h.example.com", token = paste0("dapi", bad), cluster_id = "c"),
               class = "dbrxr_input_error")

  # The bytes are what is sent: latin1 text is refused until converted.
  latin1 <- "caf\xe9"
  Encoding(latin1) <- "latin1"
  e <- expect_error(dbx_exec(latin1, conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "enc2utf8", fixed = TRUE)
  expect_silent(dbrxr:::check_utf8(enc2utf8(latin1)))
  expect_silent(dbrxr:::check_utf8("caf\u00e9 \u65e5\u672c"))
})

test_that("non-finite numbers are refused where only finite ones make sense", {
  local_clean_config()
  for (opt in c("poll_max", "cluster_timeout", "timeout")) {
    for (bad in list(Inf, -Inf, NaN)) {
      args <- c(list(host = "http://127.0.0.1:9", token = "t", cluster_id = "c"), stats::setNames(list(bad), opt))
      e <- expect_error(do.call(dbx_connect, args), class = "dbrxr_input_error")
      expect_match(conditionMessage(e), sprintf("`%s` must be a number", opt))
    }
  }
  e <- expect_error(dbx_connect(host = "http://127.0.0.1:9", token = "t", cluster_id = "c", poll_max = Inf),
                    class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "not `Inf`", fixed = TRUE)

  conn <- unreachable()
  expect_error(dbx_exec("1", conn, timeout = NaN), class = "dbrxr_input_error")
  expect_error(dbx_exec("1", conn, timeout = Inf), class = "dbrxr_input_error")
  expect_error(remote_eval(1 + 1, conn = conn, timeout = Inf), class = "dbrxr_input_error")
  expect_error(dbx_cluster_status(conn, timeout = Inf), class = "dbrxr_input_error")
})

test_that("a malformed line in ~/.databrickscfg is a dbrxr_config_error naming the file and line, not the secret", {
  home <- local_clean_config()
  secret <- "dapiPASTEDSECRET0123456789abcdef"
  cfg <- write_databrickscfg(home, c("[DEFAULT]", "host = https://x.cloud.databricks.com",
                                     "token =", secret, "cluster_id = c-1"))
  e <- expect_error(dbx_connect(), class = "dbrxr_config_error")
  msg <- conditionMessage(e)
  expect_match(msg, "Line 4 of the config file", fixed = TRUE)
  expect_match(msg, cfg, fixed = TRUE)
  expect_false(grepl(secret, paste(msg, format(e), toString(unlist(e)))))
  expect_identical(e$line, "4")

  # The same through an explicit profile and config_file.
  other <- file.path(home, "other.cfg")
  writeLines(c("[dev]", "host = https://y.cloud.databricks.com", "token: t", "[broken"), other)
  e <- expect_error(dbx_connect(profile = "dev", config_file = other), class = "dbrxr_config_error")
  expect_match(conditionMessage(e), "Line 4 of the config file", fixed = TRUE)
})
