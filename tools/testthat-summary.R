# Runs the testthat suite against the installed package and writes
# "passed failed skipped" (counted per test) to the file given as argument,
# and, when a second path is given, one short paragraph per failed test there
# (file, test, the first lines of its message), which run-tests.sh prints
# again at the very end so that a log's tail names what failed.
args <- commandArgs(trailingOnly = TRUE)
out <- args[[1]]
failures_out <- if (length(args) >= 2) args[[2]] else NULL
library(testthat)
res <- testthat::test_dir("tests/testthat", package = "dbrxr", load_package = "installed",
                          reporter = testthat::ProgressReporter$new(show_praise = FALSE),
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
df <- as.data.frame(res)
bad <- df$failed > 0 | df$error
failed <- sum(bad)
skipped <- sum(df$skipped & !bad)
passed <- nrow(df) - failed - skipped
writeLines(paste(passed, failed, skipped), out)

if (!is.null(failures_out)) {
  failure_text <- function(test) {
    failing <- Filter(function(e) inherits(e, c("expectation_failure", "expectation_error")),
                      test$results)
    lines <- unlist(lapply(failing, function(e) strsplit(conditionMessage(e), "\n")[[1]]))
    lines <- utils::head(lines[nzchar(trimws(lines))], 8)
    c(sprintf("FAILED %s: %s", test$file, test$test), paste0("    ", lines))
  }
  writeLines(as.character(unlist(lapply(unclass(res)[bad], failure_text))), failures_out)
}
