# The exported testing kit, used the way a user's suite uses it: the example
# test file installed with the package (inst/examples/testthat) runs in a
# fresh R process, once with rpy2 (all pass) and once with a Python without
# it (all skip, with the reason and the fix).

run_user_suite <- function(env = character()) {
  path <- system.file("examples", "testthat", "test-scoring.R", package = "dbrxr")
  expect_true(nzchar(path))
  script <- withr::local_tempfile(fileext = ".R")
  writeLines(c(
    sprintf("r <- testthat::test_file(%s, reporter = 'silent', stop_on_failure = FALSE)",
            deparse(path)),
    "res <- as.data.frame(r)",
    "cat('COUNTS', sum(res$failed > 0 | res$error), sum(res$skipped), nrow(res), '\\n')",
    "for (t in r) for (x in t$results) {",
    "  if (inherits(x, 'expectation_skip')) cat('SKIP', conditionMessage(x), '\\n')",
    "  if (inherits(x, c('expectation_failure', 'expectation_error'))) cat('FAIL', conditionMessage(x), '\\n')",
    "}"),
    script)
  out <- withr::with_envvar(c(R_LIBS = paste(.libPaths(), collapse = ":"), env),
    system2(file.path(R.home("bin"), "Rscript"), shQuote(script), stdout = TRUE, stderr = TRUE))
  counts <- as.integer(strsplit(sub(".*COUNTS ", "", grep("COUNTS", out, value = TRUE)), " ")[[1]][1:3])
  list(failed = counts[1], skipped = counts[2], tests = counts[3],
       skips = grep("^SKIP", out, value = TRUE), output = out)
}

test_that("a user's test file with the kit passes on the local cluster", {
  skip_if_no_local_cluster()
  res <- run_user_suite()
  expect_identical(res$failed, 0L, info = paste(res$output, collapse = "\n"))
  expect_identical(res$skipped, 0L)
  expect_identical(res$tests, 3L)
})

test_that("with a Python without rpy2 the user's tests skip with the reason and fix", {
  nopy <- withr::local_tempfile()
  writeLines(c("#!/bin/sh", "exec python3 -S \"$@\""), nopy)  # -S: no site-packages, no rpy2
  Sys.chmod(nopy, "755")
  res <- run_user_suite(c(DBRXR_PYTHON = nopy))
  expect_identical(res$failed, 0L, info = paste(res$output, collapse = "\n"))
  expect_identical(res$skipped, 3L)
  expect_length(res$skips, 3L)
  expect_match(res$skips[1], "needs a Python that can import rpy2 \\(tried .*\\)", fixed = FALSE)
  expect_match(res$skips[1], "apt-get install python3-rpy2", fixed = TRUE)
  expect_match(res$skips[1], "DBRXR_PYTHON", fixed = TRUE)
})

test_that("local_test_cluster() is the default for the test and stopped when it ends", {
  skip_if_no_local_cluster()
  withr::local_options(dbrxr.connection = NULL)
  url <- NULL
  local({
    conn <- local_test_cluster()
    expect_identical(dbx_default_connection(), conn)
    url <<- conn$local_info$url
    expect_identical(remote_eval(6L * 7L), 42L)
  })
  expect_null(getOption("dbrxr.connection"))
  expect_error(suppressWarnings(readLines(paste0(url, "/api/2.0/clusters/list"), warn = FALSE)))
})

test_that("dbrxr-local is installed with the package and serves a client", {
  path <- dbrxr_local_path()
  expect_identical(path, system.file("bin", "dbrxr-local", package = "dbrxr"))
  expect_true(file.exists(path))
  state <- withr::local_tempdir()
  p <- processx::process$new(path, c("--port", "0", "--token", "tok", "--state-dir", state),
                             stdout = "|", stderr = "|")
  withr::defer(p$kill())
  p$poll_io(5000)
  first <- p$read_output_lines(1)
  expect_match(first, "^dbrxr-local listening on http://127\\.0\\.0\\.1:[0-9]+$")
  url <- sub("^dbrxr-local listening on ", "", first)
  conn <- dbx_connect(host = url, token = "tok", cluster_id = "local-cluster")
  withr::defer(dbx_disconnect(conn))
  expect_identical(dbx_cluster_status(conn)$state, "RUNNING")
})
