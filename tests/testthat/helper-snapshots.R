# Snapshot tests (expect_snapshot()) are skipped "on CRAN", which testthat
# assumes unless NOT_CRAN is set. This suite needs a local cluster and never
# runs on CRAN, so its snapshots of user-facing conditions always run.
if (!nzchar(Sys.getenv("NOT_CRAN"))) Sys.setenv(NOT_CRAN = "true")

# What varies between runs and machines in condition messages: ports, ids,
# hashes, temporary paths, timings, Python versions and paths.
scrub <- function(x) {
  x <- gsub("127\\.0\\.0\\.1:[0-9]+", "127.0.0.1:PORT", x)
  x <- gsub("[0-9a-f]{24,64}", "HASH", x)
  x <- gsub("(^|[ (`'])(/tmp|/var/tmp)/[^ `'\"),]*", "\\1TMP", x)
  x <- gsub("request id [^ )]+", "request id ID", x)
  x <- gsub("[0-9]+(\\.[0-9]+)? ?(s|ms|secs|seconds)\\b", "N s", x)
  x <- gsub("Python: .*", "Python: VERSION", x)
  x <- gsub("Install them for [^:]+:", "Install them for PYTHON:", x)
  x
}
