# MLflow on the local cluster, for test-mlflow.R and test-slow-mlflow.R.

mlflow_python <- function() local_python_with("pyspark, pyarrow, mlflow")

skip_if_no_mlflow <- function() {
  skip_if_no_spark()
  if (is.null(mlflow_python())) {
    testthat::skip("the local cluster's Python has no MLflow: run `make venv` and set DBRXR_PYTHON=.venv/bin/python")
  }
}

# The run's shared Spark cluster (its MLflow server starts on first use), schema main.ml.
mlflow_conn <- function(.env = parent.frame()) {
  skip_if_no_mlflow()
  shared_spark_cluster("main.ml", .env = .env)
}

# What Python's MLflow needs to use a workspace's tracking server and Unity
# Catalog registry, with the run's shared Spark cluster as the workspace.
workspace_mlflow_env <- function(conn) {
  c(DATABRICKS_HOST = conn$local_info$url, DATABRICKS_TOKEN = shared_spark_token,
    MLFLOW_TRACKING_URI = "databricks", MLFLOW_REGISTRY_URI = "databricks-uc")
}
