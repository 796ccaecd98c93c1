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

# testthat's progress (`parent`), plus the wall-clock seconds of each file (from
# its first event to its end) and of each test. When files run in parallel
# (below), testthat records no times of its own; with a parent that takes
# parallel updates, events reach this reporter as they happen (within 0.1 s),
# each after start_file() naming its file.
timed_reporter <- function(parent) R6::R6Class("TimedProgressReporter", inherit = parent,
  public = list(
    file = NULL, file_start = list(), file_end = list(), test_start = list(), tests = NULL,
    start_file = function(filename) {
      self$file <- filename
      if (is.null(self$file_start[[filename]])) self$file_start[[filename]] <- Sys.time()
      super$start_file(filename)
    },
    start_test = function(context, test) {
      self$test_start[[paste(self$file, test)]] <- Sys.time()
      super$start_test(context, test)
    },
    end_test = function(context, test) {
      t0 <- self$test_start[[paste(self$file, test)]]
      if (!is.null(t0)) {
        secs <- as.numeric(Sys.time() - t0, units = "secs")
        self$tests <- rbind(self$tests, data.frame(real = secs, file = self$file, test = test))
      }
      super$end_test(context, test)
    },
    end_file = function() {
      self$file_end[[self$file]] <- Sys.time()
      super$end_file()
    },
    # In a log (not a terminal), the parallel reporter's status line only
    # when a file ends, not ten times a second.
    update = function(force = FALSE) {
      if (!isTRUE(self$dynamic) && !force) return(invisible())
      super$update(force)
    },
    file_seconds = function() {
      files <- intersect(names(self$file_start), names(self$file_end))
      secs <- vapply(files, function(f) as.numeric(self$file_end[[f]] - self$file_start[[f]], units = "secs"), 0)
      data.frame(file = files, seconds = unname(secs))
    }
  )
)

if (tier == "slow") Sys.setenv(DBRXR_TEST_SLOW = "true")
# Two files at a time (DBRXR_TEST_WORKERS): the tests mostly wait on the local
# clusters' processes. Each worker has its own shared clusters; helper-tiers.R
# keeps the setting from the processes the tests start.
workers <- as.integer(Sys.getenv("DBRXR_TEST_WORKERS", "2"))
if (workers > 1) Sys.setenv(TESTTHAT_PARALLEL = "TRUE", TESTTHAT_CPUS = workers)
parent <- if (workers > 1) testthat::ParallelProgressReporter else testthat::ProgressReporter
reporter <- timed_reporter(parent)$new(show_praise = FALSE)
res <- testthat::test_dir("tests/testthat", package = "dbrxr", load_package = "installed",
                          filter = "^slow-", invert = tier == "default", reporter = reporter,
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
df <- as.data.frame(res)
bad <- df$failed > 0 | df$error
failed <- sum(bad)
skipped <- sum(df$skipped & !bad)
passed <- nrow(df) - failed - skipped
writeLines(paste(passed, failed, skipped), out)

# Every test's seconds, slowest first, for whoever wants to know more.
dir.create("build", showWarnings = FALSE)
per_test <- reporter$tests
if (!is.null(per_test)) {
  per_test <- per_test[order(-per_test$real), ]
  utils::write.table(transform(per_test, real = round(real, 2)), file.path("build", paste0("test-times-", tier, ".tsv")),
                     sep = "\t", quote = FALSE, row.names = FALSE)
}
t <- reporter$file_seconds()
if (nrow(t)) {
  t <- t[order(-t$seconds), ]
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
