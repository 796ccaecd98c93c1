# The live suite: every verb once, with an exactness check, against the
# workspace configured in the environment (README: "Checking dbrxr against
# your workspace"). Usage: Rscript tests/live/run.R   (`make test-live`)
#   --configured  only say whether the environment is configured (exit 0/1)
# Without a configuration it prints one line saying what to set and exits 0.
# DBRXR_LIVE_SKIP (comma-separated, e.g. "tables") leaves parts out.
live_dir <- local({
  file <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
  dirname(normalizePath(file[[1]]))
})
source(file.path(live_dir, "config.R"), local = TRUE)

missing <- live_missing()
if (length(missing)) {
  cat(sprintf("live suite skipped: set %s (a token or profile for the workspace too; optional DBRXR_LIVE_STAGING)\n",
              paste(missing, collapse = ", ")))
  quit(status = if ("--configured" %in% commandArgs(TRUE)) 1L else 0L)
}
if ("--configured" %in% commandArgs(TRUE)) quit(status = 0L)

res <- testthat::test_dir(live_dir, load_package = "none",
                          reporter = testthat::ProgressReporter$new(show_praise = FALSE),
                          stop_on_failure = FALSE, stop_on_warning = FALSE)
df <- as.data.frame(res)
failed <- sum(df$failed > 0 | df$error)
skipped <- sum(df$skipped & !(df$failed > 0 | df$error))
passed <- nrow(df) - failed - skipped
cat(sprintf("live suite: %d passed, %d failed, %d skipped\n", passed, failed, skipped))
quit(status = if (failed > 0) 1L else 0L)
