# Runtime profiles (issue 35): what is refused, and how, before anything
# starts. What a profile runs is in test-slow-runtime.R (its venv takes
# minutes to build).

test_that("a runtime whose Python this machine cannot install is refused before anything starts, with the reason", {
  e <- expect_error(local_cluster(runtime = "16.4"), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "Python 3.12", fixed = TRUE)
  expect_match(conditionMessage(e), "\"15.4\"", fixed = TRUE)
  expect_error(local_cluster(runtime = "9.9"), class = "dbrxr_input_error", regexp = "Unknown runtime \"9.9\"", fixed = TRUE)
})

test_that("a runtime profile whose venv is missing is a dbrxr_local_runtime_error naming its make target", {
  skip_if_no_rpy2()
  withr::local_envvar(DBRXR_RUNTIME_HOME = tempfile("no-runtime-home"))
  e <- expect_error(local_cluster(runtime = "15.4"), class = "dbrxr_local_runtime_error")
  expect_s3_class(e, "dbrxr_local_cluster_error")
  expect_identical(e$make_target, "runtime-15.4")
  expect_identical(e$runtime, "15.4")
  expect_match(paste(conditionMessage(e), collapse = "\n"), "make runtime-15.4", fixed = TRUE)
})

test_that("dbrxr-local --runtime takes the same profiles and says why it refuses one", {
  bin <- dbrxr_local_path()
  skip_if(!nzchar(bin) || !file.exists(bin), "dbrxr-local is not installed")
  out <- suppressWarnings(system2(bin, c("--runtime", "16.4"), stdout = TRUE, stderr = TRUE))
  expect_false(is.null(attr(out, "status")))
  expect_match(paste(out, collapse = "\n"), "Python 3.12", fixed = TRUE)
  help <- system2(bin, "--help", stdout = TRUE, stderr = TRUE)
  expect_true(any(grepl("--runtime", help, fixed = TRUE)))
})

test_that("a venv that is not the runtime's (another pandas) is refused, naming what differs and how to rebuild", {
  py <- spark_python()
  skip_if(is.null(py) || !file.exists(file.path(dirname(dirname(py)), "pyvenv.cfg")),
          "needs the project's venv (make venv; DBRXR_PYTHON=.venv/bin/python)")
  home <- withr::local_tempdir()
  file.symlink(normalizePath(dirname(dirname(py))), file.path(home, ".venv-15.4"))
  pandas <- system2(py, c("-c", shQuote("import importlib.metadata as m; print(m.version('pandas'))")), stdout = TRUE)
  skip_if(identical(pandas, "1.5.3"), "this venv has the runtime's pandas")
  withr::local_envvar(DBRXR_RUNTIME_HOME = home)
  e <- expect_error(local_cluster(runtime = "15.4"), class = "dbrxr_local_runtime_error")
  msg <- paste(conditionMessage(e), collapse = "\n")
  expect_match(msg, sprintf("pandas %s (the runtime has 1.5.3)", pandas), fixed = TRUE)
  expect_match(msg, "make runtime-15.4", fixed = TRUE)
})
