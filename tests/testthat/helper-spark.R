# The local cluster's Python with PySpark and PyArrow (the project's .venv,
# DBRXR_PYTHON in make test), or a skip saying how to get it.
spark_python <- function() {
  py <- local_python()
  if (is.null(py)) return(NULL)
  ok <- identical(suppressWarnings(system2(py, c("-c", shQuote("import pyspark, pyarrow")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
  if (ok) py else NULL
}

skip_if_no_spark <- function() {
  if (is.null(spark_python())) {
    testthat::skip("the local cluster's Python has no PySpark: run `make venv` and set DBRXR_PYTHON=.venv/bin/python")
  }
}
