# Snapshot tests (expect_snapshot()) are skipped "on CRAN", which testthat
# assumes unless NOT_CRAN is set. This suite needs a local cluster and never
# runs on CRAN, so its snapshots of user-facing conditions always run.
if (!nzchar(Sys.getenv("NOT_CRAN"))) Sys.setenv(NOT_CRAN = "true")
