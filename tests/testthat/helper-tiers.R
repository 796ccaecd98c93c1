# Two tiers, as arrow's ARROW_R_DEV gates or testthat's skip_on_cran() do.
# `make test` runs the default tier: every behaviour covered once. What repeats
# a behaviour at scale or waits on a clock lives in test-slow-*.R files, each of
# whose tests starts with skip_if_not_slow(); `make test-slow` runs only those,
# with DBRXR_TEST_SLOW=true.
slow_tests_enabled <- function() identical(tolower(Sys.getenv("DBRXR_TEST_SLOW")), "true")

skip_if_not_slow <- function() {
  if (!slow_tests_enabled()) {
    testthat::skip("slow tier: set DBRXR_TEST_SLOW=true (make test-slow)")
  }
  invisible(TRUE)
}

# Seconds `expr` took (test-future.R, test-slow-future.R, test-bounded-waits.R).
elapsed <- function(expr) {
  t0 <- proc.time()[["elapsed"]]
  force(expr)
  proc.time()[["elapsed"]] - t0
}

# tools/testthat-summary.R runs files in parallel through TESTTHAT_PARALLEL;
# the R processes the tests start (a user's package tests, the CI examples)
# must not inherit it.
Sys.unsetenv(c("TESTTHAT_PARALLEL", "TESTTHAT_CPUS"))
