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
