# The live suite (tests/live): its skip line without a configuration, and the
# CI examples' shell steps. Its full run against a standalone dbrxr-local
# standing in for a workspace: test-slow-sitrep-live.R.

test_that("without a configuration the live suite prints one skip line and exits 0", {
  run <- live_runner()
  res <- processx::run(file.path(R.home("bin"), "Rscript"), run,
                       env = c("current", DATABRICKS_HOST = "", DATABRICKS_CONFIG_PROFILE = "",
                               DBRXR_LIVE_CLUSTER_ID = "", DBRXR_LIVE_SCHEMA = ""),
                       error_on_status = FALSE, timeout = 60)
  expect_identical(res$status, 0L)
  lines <- strsplit(trimws(res$stdout), "\n")[[1]]
  expect_length(lines, 1)
  expect_match(lines, "^live suite skipped: set DATABRICKS_HOST, DBRXR_LIVE_CLUSTER_ID, DBRXR_LIVE_SCHEMA")
  conf <- processx::run(file.path(R.home("bin"), "Rscript"), c(run, "--configured"),
                        env = c("current", DBRXR_LIVE_CLUSTER_ID = ""), error_on_status = FALSE)
  expect_identical(conf$status, 1L)
})

test_that("the GitHub Actions example's shell steps run here: service, unit tests, live tests skipped and run", {
  # The Azure Pipelines example: test-slow-sitrep-live.R.
  expect_ci_examples_run("github-actions.yml")
})
