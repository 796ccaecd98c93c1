# The testing kit for users' own suites: a local cluster scoped to a test,
# a skip that says what is missing and how to get it, and the path of the
# standalone dbrxr-local binary installed with the package.

#' Test code that uses dbrxr
#'
#' Helpers for your own testthat suite (see `vignette("testing", package =
#' "dbrxr")`):
#'
#' * `local_test_cluster()` starts a [local_cluster()], makes it the default
#'   connection while `.env` runs (so code under test that omits `conn` uses
#'   it) and stops it when `.env` ends, like the `local_*()` functions of
#'   withr. It skips the test (see below) when the local cluster cannot run R.
#' * `skip_if_no_local_cluster()` skips the current test, with the reason and
#'   the fix, when no Python that can import rpy2 is found. The local
#'   cluster's contexts are Python processes running R through rpy2. The
#'   Python is `DBRXR_PYTHON` when set, else the first of `python3` on the
#'   `PATH` and `/usr/bin/python3` that imports rpy2.
#' * `dbrxr_local_path()` is the path of the `dbrxr-local` binary installed
#'   with the package: a standalone local cluster for CI pipelines and any
#'   Databricks client (no cargo needed). Its first line on stdout is
#'   `dbrxr-local listening on http://127.0.0.1:PORT`.
#'
#' @param ... Passed to [local_cluster()].
#' @param .env The environment whose end stops the cluster: by default the
#'   caller's (a `test_that()` block, or a function of a helper file).
#' @return `local_test_cluster()`: the `dbx_connection`.
#'   `skip_if_no_local_cluster()`: the Python found, invisibly (or the test is
#'   skipped). `dbrxr_local_path()`: the path of the binary, or an error of
#'   class `dbrxr_local_cluster_error` saying how to build it.
#' @name dbrxr-testing
#' @examples
#' dbrxr_local_path()
#' \donttest{
#' if (requireNamespace("testthat", quietly = TRUE)) {
#'   testthat::test_that("my model scores the same remotely", {
#'     skip_if_no_local_cluster()
#'     conn <- local_test_cluster()
#'     fit <- lm(mpg ~ wt, data = mtcars)
#'     testthat::expect_identical(remote_score(fit, mtcars), predict(fit, mtcars))
#'   })
#' }
#' }
NULL

#' @rdname dbrxr-testing
#' @export
local_test_cluster <- function(..., .env = parent.frame()) {
  python <- skip_if_no_local_cluster()
  dots <- list(...)
  arg <- function(nm) dots[[nm, exact = TRUE]]  # `$` would match token_ttl_s for token
  conn <- start_local_cluster(arg("python") %||% python, arg("port") %||% 0L, arg("token"),
                              dots[setdiff(names(dots), c("python", "port", "token"))],
                              call = rlang::current_env())
  old <- getOption("dbrxr.connection")
  options(dbrxr.connection = conn)
  defer_in(function() {
    options(dbrxr.connection = old)
    dbx_disconnect(conn)
  }, .env)
  invisible(conn)
}

#' @rdname dbrxr-testing
#' @export
skip_if_no_local_cluster <- function() {
  python <- rpy2_python()
  if (is.null(python)) {
    if (!requireNamespace("testthat", quietly = TRUE)) {
      abort_dbrxr("No Python with rpy2 was found, and testthat is not installed to skip.",
                  "dbrxr_local_cluster_error", hints = no_rpy2_fix())
    }
    testthat::skip(paste0("dbrxr's local cluster needs a Python that can import rpy2 (tried ",
                          paste(python_candidates(), collapse = ", "), "). ",
                          paste(no_rpy2_fix(), collapse = " ")))
  }
  invisible(python)
}

no_rpy2_fix <- function() {
  c("Install rpy2 (`apt-get install python3-rpy2`, or `pip install rpy2` for the Python you use),",
    "or point DBRXR_PYTHON at a Python that has it.")
}

python_candidates <- function() {
  env <- Sys.getenv("DBRXR_PYTHON")
  # An explicit choice is the only one tried.
  if (nzchar(env)) return(env)
  unique(c(unname(Sys.which("python3")[nzchar(Sys.which("python3"))]), "/usr/bin/python3"))
}

# The first candidate that can import rpy2, remembered per candidate list.
rpy2_python <- function() {
  cands <- python_candidates()
  key <- paste(cands, collapse = "\n")
  if (!identical(the$rpy2_key, key)) {
    ok <- vapply(cands, function(py) {
      file.exists(py) && identical(suppressWarnings(
        system2(py, c("-c", shQuote("import rpy2.rinterface")), stdout = FALSE, stderr = FALSE)), 0L)
    }, logical(1))
    the$rpy2_key <- key
    the$rpy2_python <- if (any(ok)) cands[ok][[1]] else NULL
  }
  the$rpy2_python
}

#' @rdname dbrxr-testing
#' @export
dbrxr_local_path <- function() {
  path <- system.file("bin", "dbrxr-local", package = "dbrxr")
  if (!nzchar(path)) {
    abort_dbrxr("The dbrxr-local binary is not installed with this copy of dbrxr.",
                "dbrxr_local_cluster_error",
                hints = c("It is built by the package's own installation (`R CMD INSTALL`, which needs cargo).",
                          "From a source checkout, `make local-bin` builds it under src/rust/target/release/."))
  }
  path
}

# withr::defer() without needing withr (a Suggest): run `fun` when `env` ends.
defer_in <- function(fun, env) {
  if (requireNamespace("withr", quietly = TRUE)) {
    withr::defer(fun(), envir = env)
  } else {
    do.call(base::on.exit, list(substitute(f(), list(f = fun)), add = TRUE), envir = env)
  }
}
