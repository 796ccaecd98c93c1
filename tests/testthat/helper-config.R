# Isolate a test from the user's Databricks configuration: no DATABRICKS_*
# variables, no legacy variables, and HOME pointing at an empty directory.
local_clean_config <- function(.env = parent.frame()) {
  home <- withr::local_tempdir(.local_envir = .env)
  vars <- c("DATABRICKS_HOST", "DATABRICKS_TOKEN", "DATABRICKS_CLUSTER_ID",
            "DATABRICKS_CONFIG_PROFILE", "DATABRICKS_CONFIG_FILE", "DATABRICKS_AUTH_TYPE",
            "DATABRICKS_CLIENT_ID", "DATABRICKS_CLIENT_SECRET", "DATABRICKS_CLI_PATH",
            "DBRX_HOST", "DBRX_API_TOKEN", "CLUSTER_ID", "DBRXR_STAGING")
  withr::local_envvar(c(stats::setNames(rep(NA_character_, length(vars)), vars),
                        HOME = home, PATH = "/usr/bin:/bin"), .local_envir = .env)
  withr::local_options(dbrxr.connection = NULL, .local_envir = .env)
  home
}

write_databrickscfg <- function(home, lines) {
  path <- file.path(home, ".databrickscfg")
  writeLines(lines, path)
  path
}
