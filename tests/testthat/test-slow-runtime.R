# Runtime profiles (issue 35): `local_cluster(runtime = "15.4")` runs its
# contexts and job tasks in .venv-15.4, pinned to Databricks Runtime 15.4 LTS's
# libraries (tools/runtime-15.4.txt), so the shipped Python runs here on the
# pandas, PyArrow, NumPy, PySpark and MLflow it meets on that runtime. The venv
# takes minutes to build (`make runtime-15.4`; make test-slow builds it first),
# hence the slow tier. One cluster serves the file; the MLflow server runs
# from the main venv (the `python` argument).

runtime_checkout <- function() normalizePath(file.path("..", ".."), mustWork = FALSE)

# Pins of a profile, from its tools/ file: c(pandas = "1.5.3", ...).
runtime_pins <- function(version) {
  file <- file.path(runtime_checkout(), "tools", sprintf("runtime-%s.txt", version))
  if (!file.exists(file)) testthat::skip(sprintf("%s is not here (run from a dbrxr checkout)", file))
  lines <- trimws(sub("#.*", "", readLines(file)))
  exact <- strsplit(grep("==", lines, value = TRUE, fixed = TRUE), "==", fixed = TRUE)
  pins <- stats::setNames(vapply(exact, `[`, "", 2), vapply(exact, `[`, "", 1))
  pins[names(pins) != "cffi"]  # Debian's rpy2 backend, not a runtime library
}

runtime_clusters <- new.env(parent = emptyenv())

# The file's runtime 15.4 cluster, started once (its schemas main.rt and
# main.jobs), or a skip naming the make target that builds its venv.
runtime_cluster <- function(.env = parent.frame()) {
  skip_if_not_slow()
  skip_if_no_mlflow()
  home <- Sys.getenv("DBRXR_RUNTIME_HOME", runtime_checkout())
  venv <- file.path(home, ".venv-15.4", "bin", "python")
  if (!file.exists(venv)) {
    testthat::skip(sprintf("runtime 15.4's venv is missing (%s): run `make runtime-15.4` (make test-slow builds it)", venv))
  }
  conn <- runtime_clusters$conn
  if (is.null(conn) || isTRUE(conn$closed)) {
    withr::local_envvar(DBRXR_RUNTIME_HOME = home)
    conn <- local_cluster(python = mlflow_python(), runtime = "15.4", token = "runtime-test-token-0123456789")
    provide_dbrxr_on_cluster(conn)
    withr::defer(dbx_disconnect(conn), envir = testthat::teardown_env())
    for (s in c("main.rt", "main.jobs", "main.ml")) {
      dbx_exec(sprintf("spark.sql('CREATE SCHEMA IF NOT EXISTS %s')", s), conn)
    }
    runtime_clusters$conn <- conn
  }
  withr::local_options(dbrxr.connection = conn, .local_envir = .env)
  conn
}

# `python -c` code printing the Python minor version and each pin's module version.
versions_code <- paste(
  "import sys, pandas, pyarrow, numpy, pyspark, mlflow",
  "print('python', '%d.%d' % sys.version_info[:2])",
  "for n, m in [('pandas', pandas), ('pyarrow', pyarrow), ('numpy', numpy), ('pyspark', pyspark), ('mlflow-skinny', mlflow)]: print(n, m.__version__)",
  sep = "\n")

parse_versions <- function(out) {
  kv <- strsplit(trimws(strsplit(trimws(out), "\n", fixed = TRUE)[[1]]), " ", fixed = TRUE)
  stats::setNames(vapply(kv, `[`, "", 2), vapply(kv, `[`, "", 1))
}

expect_runtime_versions <- function(seen, pins) {
  expect_identical(seen[["python"]], "3.11")
  expect_identical(seen[names(pins)], pins)
}

test_that("a runtime 15.4 cluster reports 15.4.x-scala2.12, and its contexts import exactly the pinned versions", {
  conn <- runtime_cluster()
  pins <- runtime_pins("15.4")
  expect_setequal(names(pins), c("pandas", "pyarrow", "numpy", "pyspark", "mlflow-skinny"))
  expect_identical(dbx_cluster_status(conn)$spark_version, "15.4.x-scala2.12")
  expect_identical(conn$local_info$runtime, "15.4")
  expect_match(paste(format(conn), collapse = "\n"), "runtime:  15.4 (15.4.x-scala2.12)", fixed = TRUE)
  expect_runtime_versions(parse_versions(dbx_exec(versions_code, conn)), pins)
  # The MLflow server is not the context's Python: it keeps the main venv.
  expect_false(identical(conn$local_info$python, mlflow_python()))
})

test_that("dbx_sitrep() on a runtime 15.4 cluster reports its runtime and the pinned library versions", {
  conn <- runtime_cluster()
  pins <- runtime_pins("15.4")
  report <- dbx_sitrep(conn)
  detail <- stats::setNames(report$detail, report$check)
  expect_match(detail[["cluster"]], "runtime 15.4.x-scala2.12", fixed = TRUE)
  expect_match(detail[["python"]], "Python 3.11", fixed = TRUE)
  for (n in names(pins)) expect_match(detail[["python"]], paste(n, pins[[n]]), fixed = TRUE)
  expect_match(detail[["mlflow"]], paste("MLflow", pins[["mlflow-skinny"]]), fixed = TRUE)
  expect_true(all(report$status[report$check %in% c("cluster", "python", "r", "spark", "mlflow")] == "ok"))
})

test_that("tables with runtime 15.4: dbx_write_table(), dbx_read_table() and remote_score_table() round-trip exactly", {
  conn <- runtime_cluster()
  set.seed(15)
  n <- 20000
  df <- data.frame(id = seq_len(n), x = rnorm(n), k = sample(letters, n, TRUE),
                   when = as.Date("2024-01-01") + sample(0:365, n, TRUE),
                   at = as.POSIXct("2024-06-01 12:00:00", tz = "UTC") + runif(n, 0, 1e6),
                   flag = sample(c(TRUE, FALSE, NA), n, TRUE), stringsAsFactors = FALSE)
  df$x[c(3, 7)] <- NA
  dbx_write_table(df, "main.rt.t", mode = "overwrite", conn = conn)
  back <- dbx_read_table("main.rt.t", conn = conn)
  back <- back[order(back$id), ]
  rownames(back) <- NULL
  expect_identical(back$id, df$id)
  expect_identical(back$x, df$x)
  expect_identical(back$k, df$k)
  expect_identical(back$when, df$when)
  expect_equal(as.numeric(back$at), as.numeric(df$at), tolerance = 1e-6)
  expect_identical(back$flag, df$flag)

  fit <- lm(stats::as.formula("x ~ k + as.numeric(when)", env = globalenv()), data = df)
  remote_score_table(fit, "main.rt.t", "main.rt.scored", keep = "id", mode = "overwrite", conn = conn)
  out <- dbx_read_table("main.rt.scored", conn = conn)
  out <- out[order(out$id), ]
  expect_identical(unname(out$.pred), unname(predict(fit, df)))
})

test_that("DBI queries run on a runtime 15.4 cluster", {
  skip_if_not_installed("DBI")
  conn <- runtime_cluster()
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  withr::defer(DBI::dbDisconnect(con))
  cars <- mtcars[c("mpg", "cyl", "wt")]
  rownames(cars) <- NULL
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "rt", table = "dbi_cars"), cars, overwrite = TRUE)
  got <- DBI::dbGetQuery(con, "SELECT cyl, COUNT(*) AS n, AVG(mpg) AS mpg FROM main.rt.dbi_cars GROUP BY cyl ORDER BY cyl")
  want <- aggregate(mpg ~ cyl, mtcars, mean)
  expect_equal(as.numeric(got$cyl), want$cyl)
  expect_equal(as.numeric(got$n), as.numeric(table(mtcars$cyl)))
  expect_equal(got$mpg, want$mpg)
  res <- DBI::dbSendQuery(con, "SELECT mpg FROM main.rt.dbi_cars WHERE wt > 3.5 ORDER BY mpg")
  first <- DBI::dbFetch(res, n = 2)
  rest <- DBI::dbFetch(res)
  DBI::dbClearResult(res)
  expect_equal(c(first$mpg, rest$mpg), sort(mtcars$mpg[mtcars$wt > 3.5]))
})

test_that("the registry with runtime 15.4: remote_log_model() and remote_score() on models:/ give predict()'s values", {
  # DBR 15.4's mlflow-skinny 2.11.4 predates default storage: it moves run
  # artifacts through per-file presigned URLs (artifacts/credentials-for-*)
  # and a version's files with boto3 and the temporary AWS credentials the
  # registry hands out (the workspace's S3 store, uc_s3.rs).
  conn <- runtime_cluster()
  fit <- lm(mpg ~ wt + hp + factor(cyl), data = mtcars)
  v <- remote_log_model(fit, "main.ml.rt_mpg", input_example = head(mtcars[c("wt", "hp", "cyl")]),
                        alias = "champion", conn = conn)
  expect_false(is.null(v))
  newdata <- mtcars[c("wt", "hp", "cyl")]
  got <- remote_score("models:/main.ml.rt_mpg@champion", newdata, conn = conn)
  expect_identical(unname(unlist(got)), unname(predict(fit, newdata)))
  score_cars_by_uri(conn, "models:/main.ml.rt_mpg@champion", fit, n = 5000)
})

test_that("boto3 of runtime 15.4 moves a version's files through the S3 store: parts, ranges, listings, grants", {
  conn <- runtime_cluster()
  py <- file.path(Sys.getenv("DBRXR_RUNTIME_HOME", runtime_checkout()), ".venv-15.4", "bin", "python")
  res <- processx::run(py, c(test_path("fixtures", "uc_s3_boto3.py"), conn$local_info$url,
                             "runtime-test-token-0123456789", "main.ml.rt_s3"),
                       error_on_status = FALSE, timeout = 300)
  expect_identical(res$status, 0L, info = paste(res$stdout, res$stderr))
  expect_length(grep("^ok ", strsplit(res$stdout, "\n")[[1]]), 6)
})

test_that("a job run with runtime 15.4 scores a table in a task process that has the pinned versions", {
  conn <- runtime_cluster()
  pins <- runtime_pins("15.4")
  expect_job_scores_table(conn, n = 5000)
  # The task's own interpreter (argv[0] of the task process R is embedded in)
  # reports the versions it imports.
  run <- remote_job(bquote({
    cmdline <- readBin("/proc/self/cmdline", "raw", 65536)
    python <- rawToChar(cmdline[seq_len(which(cmdline == as.raw(0))[1] - 1)])
    paste(system2(python, c("-c", shQuote(.(versions_code))), stdout = TRUE), collapse = "\n")
  }), conn = conn)
  expect_runtime_versions(parse_versions(dbx_run_result(run)), pins)
})
