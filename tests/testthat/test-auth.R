# Authentication against the local cluster: rejected tokens, OAuth M2M refresh.
# Clusters of their own: each test sets the cluster's token or OAuth client.

test_that("a bad token is a dbrxr_auth_error saying how to fix it, with no secret anywhere", {
  owner <- local_test_cluster(token = "right-token-0123456789abcdef")
  secret <- "wrong-token-SECRET-0123456789"
  conn <- dbx_connect(host = owner$local_info$url, token = secret,
                      cluster_id = owner$local_info$cluster_id)
  on.exit(dbx_disconnect(conn))
  e <- expect_error(dbx_exec("pass", conn), class = "dbrxr_auth_error")
  expect_s3_class(e, "dbrxr_http_403")
  shown <- paste(conditionMessage(e), paste(capture.output(print(e)), collapse = "\n"),
                 paste(capture.output(print(conn)), collapse = "\n"))
  expect_false(grepl(secret, shown, fixed = TRUE))
  expect_match(shown, "personal access token")
  expect_match(shown, "DATABRICKS_TOKEN")
})

test_that("OAuth M2M with a 2 s token lifetime keeps working through a 10 s run of calls", {
  conn <- local_test_cluster(client_id = "sp-client", client_secret = "sp-secret-0123456789abcdef",
                             token_ttl_s = 2)
  expect_identical(conn$info$auth_type, "oauth-m2m")
  t0 <- Sys.time()
  n <- 0
  while (as.numeric(Sys.time() - t0, units = "secs") < 10) {
    n <- n + 1
    expect_identical(dbx_exec(sprintf("print(%d)", n), conn), as.character(n))
    Sys.sleep(0.05)
  }
  s <- local_stats(conn)
  expect_gte(s$routes[["POST /oidc/v1/token"]]$count, 5)
})

test_that("a wrong OAuth secret is a dbrxr_auth_error that does not show the secret", {
  owner <- local_test_cluster(client_id = "sp-client", client_secret = "sp-secret-0123456789abcdef")
  secret <- "not-the-secret-SECRET-987654321"
  conn <- dbx_connect(host = owner$local_info$url, client_id = "sp-client", client_secret = secret,
                      cluster_id = owner$local_info$cluster_id)
  on.exit(dbx_disconnect(conn))
  e <- expect_error(dbx_exec("pass", conn), class = "dbrxr_auth_error")
  expect_false(grepl(secret, paste(capture.output(print(e)), collapse = "\n"), fixed = TRUE))
})
