# Local clusters for tests come from the package's exported testing kit
# (local_test_cluster(), skip_if_no_local_cluster()); these names keep the
# suite's older spelling.
local_python <- function() dbrxr:::rpy2_python()

skip_if_no_rpy2 <- function() skip_if_no_local_cluster()

# The kit's cluster, plus the installed dbrxr in its site library: testthat
# evaluates these tests in dbrxr's namespace, so closures shipped from them
# need dbrxr on the cluster (contexts do not see this session's R_LIBS).
local_test_cluster <- function(..., .env = parent.frame()) {
  conn <- dbrxr::local_test_cluster(..., .env = .env)
  provide_dbrxr_on_cluster(conn)
  conn
}

# Ctrl-C from outside: once `conn` has executed `executed` commands (the
# child's long one is running), interrupt `child` (a callr R process) and
# expect the command Cancelled within 2 s. Returns the child's result.
interrupt_running_child <- function(child, conn, executed, start_within, settle, wait_ms) {
  running <- function() isTRUE(local_stats(conn)$commands$executed >= executed)
  deadline <- Sys.time() + start_within
  while (!running() && Sys.time() < deadline && child$is_alive()) Sys.sleep(0.05)
  testthat::expect_true(running())
  Sys.sleep(settle)
  t0 <- Sys.time()
  child$interrupt()
  while (!isTRUE(local_stats(conn)$commands$Cancelled >= 1) &&
         as.numeric(Sys.time() - t0, units = "secs") < 5) Sys.sleep(0.02)
  testthat::expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 2)
  child$wait(wait_ms)
  child$get_result()
}
