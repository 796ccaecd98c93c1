# The slow tier of test-sitrep-live.R: the whole live suite against a
# standalone dbrxr-local standing in for a workspace, which must pass and
# leave nothing behind in the cluster's stores; the second CI example.

test_that("make test-live passes against dbrxr-local and leaves nothing behind", {
  skip_if_not_slow()
  skip_if_no_spark()
  run <- live_runner()
  state <- file.path(withr::local_tempdir(), "state")
  dir.create(state)
  token <- "dapi-live-standin"
  url <- start_standalone(state, token)
  # The "workspace" has a schema for the suite, made before the listing.
  setup <- dbx_connect(host = url, token = token, cluster_id = "local-cluster")
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.dbrxr_live')", setup, timeout = 300)
  dbx_disconnect(setup)
  # ... and the staging location the suite is given exists (it removes only
  # its own run's directory there).
  dir.create(file.path(state, "fs", "dbfs", "tmp", "dbrxr-live"), recursive = TRUE)
  before <- stored(state)
  env <- c(DATABRICKS_HOST = url, DATABRICKS_TOKEN = token, DBRXR_LIVE_CLUSTER_ID = "local-cluster",
           DBRXR_LIVE_SCHEMA = "main.dbrxr_live", DBRXR_LIVE_STAGING = "dbfs:/tmp/dbrxr-live",
           R_LIBS = paste(.libPaths(), collapse = ":"), DBRXR_LIVE_SKIP = "")
  res <- processx::run(file.path(R.home("bin"), "Rscript"), run, env = c("current", env),
                       error_on_status = FALSE, timeout = 1500)
  out <- paste(res$stdout, res$stderr)
  expect_identical(res$status, 0L, info = out)
  summary <- regmatches(res$stdout, regexpr("live suite: [0-9]+ passed, [0-9]+ failed, [0-9]+ skipped", res$stdout))
  expect_length(summary, 1)
  counts <- as.integer(regmatches(summary, gregexpr("[0-9]+", summary))[[1]])
  expect_gte(counts[1], 8)
  expect_identical(counts[2], 0L, info = out)
  expect_identical(counts[3], 0L, info = out)  # every live test ran, the table test included
  after <- stored(state)
  expect_identical(setdiff(after, before), character(), info = out)
  expect_identical(setdiff(before, after), character())
})

test_that("the Azure Pipelines example's shell steps run here: service, unit tests, live tests skipped and run", {
  skip_if_not_slow()
  expect_ci_examples_run("azure-pipelines.yml")
})
