# MLflow on the local cluster, for test-mlflow.R and test-slow-mlflow.R.


mlflow_python <- function() {
  py <- spark_python()
  if (is.null(py)) return(NULL)
  ok <- identical(suppressWarnings(system2(py, c("-c", shQuote("import mlflow")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
  if (ok) py else NULL
}

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
