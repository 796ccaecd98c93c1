# Runs one tier of the testthat suite against the installed package.
#
#   Rscript tools/testthat-summary.R TIER COUNTS FAILURES TIMES
#
# TIER is "default" (every file but test-slow-*.R: make test) or "slow" (only
# test-slow-*.R, with DBRXR_TEST_SLOW=true: make test-slow). Writes
# "passed failed skipped" (counted per test) to COUNTS, one short paragraph per
# failed test to FAILURES (file, test, the first lines of its message), and
# "seconds file" per test file to TIMES, all of which run-tests.sh prints again
# at the very end, so that a log's tail names what failed and what was slow.
args <- commandArgs(trailingOnly = TRUE)
tier <- match.arg(args[[1]], c("default", "slow"))
out <- args[[2]]
failures_out <- args[[3]]
times_out <- args[[4]]
library(testthat)

# Wall-clock time of each file, from its first line to its last deferred
# teardown (a cluster stopped when the file ends counts for that file).
FileTimesReporter <- R6::R6Class("FileTimesReporter", inherit = testthat::Reporter,
  public = list(
    times = NULL, file = NULL, started = NULL,
    start_file = function(filename) {
      self$close_file()
      self$file <- filename
      self$started <- Sys.time()
    },
    close_file = function() {
      if (is.null(self$file)) return(invisible())
      secs <- as.numeric(Sys.time() - self$started, units = "secs")
      self$times <- rbind(self$times, data.frame(file = self$file, seconds = secs))
      self$file <- NULL
    },
    end_reporter = function() self$close_file()
  )
)

if (tier == "slow") Sys.setenv(DBRXR_TEST_SLOW = "true")
times <- FileTimesReporter$new()
progress <- testthat::ProgressReporter$new(show_praise = FALSE)
res <- testthat::test_dir("tests/testthat", package = "dbrxr", load_package = "installed",
                          filter = "^slow-", invert = tier == "default",
                          reporter = testthat::MultiReporter$new(list(progress, times)),
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
times$close_file()
df <- as.data.frame(res)
bad <- df$failed > 0 | df$error
failed <- sum(bad)
skipped <- sum(df$skipped & !bad)
passed <- nrow(df) - failed - skipped
writeLines(paste(passed, failed, skipped), out)

# Every test's seconds, slowest first, for whoever wants to know more.
dir.create("build", showWarnings = FALSE)
per_test <- df[order(-df$real), c("real", "file", "test")]
utils::write.table(transform(per_test, real = round(real, 2)), file.path("build", paste0("test-times-", tier, ".tsv")),
                   sep = "\t", quote = FALSE, row.names = FALSE)

if (!is.null(times$times)) {
  t <- times$times[order(-times$times$seconds), ]
  writeLines(sprintf("%7.1f %s", t$seconds, t$file), times_out)
}

failure_text <- function(test) {
  failing <- Filter(function(e) inherits(e, c("expectation_failure", "expectation_error")),
                    test$results)
  lines <- unlist(lapply(failing, function(e) strsplit(conditionMessage(e), "\n")[[1]]))
  lines <- utils::head(lines[nzchar(trimws(lines))], 8)
  c(sprintf("FAILED %s: %s", test$file, test$test), paste0("    ", lines))
}
writeLines(as.character(unlist(lapply(unclass(res)[bad], failure_text))), failures_out)
