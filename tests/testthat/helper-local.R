# Local clusters for tests come from the package's exported testing kit
# (local_test_cluster(), skip_if_no_local_cluster()); these names keep the
# suite's older spelling.
local_python <- function() dbrxr:::rpy2_python()

skip_if_no_rpy2 <- function() skip_if_no_local_cluster()
