# Runs the testthat suite against the installed package and writes
# "passed failed skipped" (counted per test) to the file given as argument.
args <- commandArgs(trailingOnly = TRUE)
out <- args[[1]]
library(testthat)
res <- testthat::test_dir("tests/testthat", package = "dbrxr", load_package = "installed",
                          reporter = testthat::ProgressReporter$new(show_praise = FALSE),
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
df <- as.data.frame(res)
failed <- sum(df$failed > 0 | df$error)
skipped <- sum(df$skipped & !(df$failed > 0 | df$error))
passed <- nrow(df) - failed - skipped
writeLines(paste(passed, failed, skipped), out)
