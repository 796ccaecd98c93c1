# Local clusters for tests. The first Python that can import rpy2 (DBRXR_PYTHON,
# python3 on PATH, /usr/bin/python3) runs the contexts; tests skip, saying why,
# only when there is none.
local_python <- local({
  found <- NULL
  function() {
    if (is.null(found)) {
      candidates <- unique(c(Sys.getenv("DBRXR_PYTHON"), Sys.which("python3"), "/usr/bin/python3"))
      candidates <- candidates[nzchar(candidates)]
      ok <- vapply(candidates, function(py) {
        identical(suppressWarnings(system2(py, c("-c", shQuote("import rpy2.rinterface")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
      }, logical(1))
      found <<- if (any(ok)) candidates[ok][[1]] else NA_character_
    }
    if (is.na(found)) NULL else found
  }
})

skip_if_no_rpy2 <- function() {
  if (is.null(local_python())) {
    testthat::skip(paste("no Python with rpy2 (tried DBRXR_PYTHON, python3, /usr/bin/python3);",
                         "install it with `apt-get install python3-rpy2` or `pip install rpy2`"))
  }
}

# Start a local cluster for one test; it is stopped when `.env` ends.
local_test_cluster <- function(..., .env = parent.frame()) {
  skip_if_no_rpy2()
  conn <- local_cluster(python = local_python(), ...)
  provide_dbrxr_on_cluster(conn)
  withr::defer(dbx_disconnect(conn), envir = .env)
  conn
}
