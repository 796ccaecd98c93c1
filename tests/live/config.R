# What the live suite needs from the environment (also read by run.R before
# anything is loaded, so keep it base R).
live_missing <- function() {
  has <- function(v) nzchar(Sys.getenv(v))
  missing <- character()
  if (!has("DATABRICKS_HOST") && !has("DATABRICKS_CONFIG_PROFILE")) {
    missing <- c(missing, "DATABRICKS_HOST")
  }
  c(missing, Filter(function(v) !has(v), c("DBRXR_LIVE_CLUSTER_ID", "DBRXR_LIVE_SCHEMA")))
}
