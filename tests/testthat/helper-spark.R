# The local cluster's Python (the project's .venv, DBRXR_PYTHON in make test)
# if it imports `modules` (one Python import statement's list), else NULL.
# Asked once per Python and modules in a test process: every Spark or MLflow
# test checks it, and importing MLflow alone takes ~1.5 s.
local_python_with <- local({
  known <- list()
  function(modules) {
    py <- local_python()
    if (is.null(py)) return(NULL)
    key <- paste(py, modules)
    if (is.null(known[[key]])) {
      known[[key]] <<- identical(suppressWarnings(system2(py, c("-c", shQuote(paste("import", modules))),
                                                          stdout = FALSE, stderr = FALSE)), 0L)
    }
    if (known[[key]]) py else NULL
  }
})

# The local cluster's Python with PySpark and PyArrow, or a skip saying how to get it.
spark_python <- function() local_python_with("pyspark, pyarrow")

skip_if_no_spark <- function() {
  if (is.null(spark_python())) {
    testthat::skip("the local cluster's Python has no PySpark: run `make venv` and set DBRXR_PYTHON=.venv/bin/python")
  }
}
