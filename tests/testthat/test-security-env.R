# The environment of the local cluster's processes (contexts and job tasks) is
# built from an allow-list (src/rust/src/local/child_env.rs): a client's
# secrets and unrelated settings never reach code running on the cluster.
# A cluster of its own: the canaries must be in the environment when it
# starts its processes.

test_that("contexts and job tasks see no client secret and no unlisted variable, but what they need", {
  skip_if_no_rpy2()
  canaries <- c(DBRXR_TEST_CANARY_SECRET = "canary-secret-1", FOO_UNLISTED = "canary-unlisted-2",
                DATABRICKS_TOKEN = "dapi-canary-3", DATABRICKS_CLIENT_SECRET = "canary-4",
                AWS_SECRET_ACCESS_KEY = "canary-5", MLFLOW_TRACKING_TOKEN = "canary-6",
                DATABRICKS_HOST = "https://canary-7.cloud.databricks.com")
  withr::local_envvar(canaries)
  conn <- local_test_cluster()
  seen <- list(context = remote_eval(as.list(Sys.getenv()), conn = conn),
               job = dbx_run_result(remote_job(function() as.list(Sys.getenv()), conn = conn)))
  for (where in names(seen)) {
    env <- seen[[where]]
    leaked <- names(env)[unlist(env) %in% canaries]
    expect_identical(leaked, character(), info = where)
    expect_false(any(c("DBRXR_TEST_CANARY_SECRET", "FOO_UNLISTED", "DATABRICKS_CLIENT_SECRET",
                       "AWS_SECRET_ACCESS_KEY") %in% names(env)), info = where)
    # What the interpreter and R need still arrives.
    expect_identical(env$PATH, Sys.getenv("PATH"), info = where)
    expect_identical(env$HOME, Sys.getenv("HOME"), info = where)
    expect_true(nzchar(env$R_HOME %||% ""), info = where)
  }
})
