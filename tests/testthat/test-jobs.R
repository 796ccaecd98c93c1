# R work as jobs on the local cluster's Jobs API (runs/submit, jobs/create...).
# Clusters of their own, but for the table job: tests list the cluster's jobs
# and runs, inject faults, or cancel runs.

test_that("a job's value is identical() to the function's: a data frame with factors and dates, and a fitted model", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  make_df <- function(n) {
    data.frame(g = factor(rep(c("lo", "hi"), length.out = n), levels = c("lo", "hi")),
               day = as.Date("2026-01-01") + seq_len(n), v = seq_len(n) / 7,
               i = seq_len(n), stringsAsFactors = FALSE)
  }
  run <- remote_job(make_df, 25, conn = conn)
  expect_s3_class(run, "dbx_run")
  expect_identical(dbx_run_result(run), make_df(25))
  expect_identical(dbx_run_status(run)$result, "SUCCESS")
  expect_output(print(dbx_run_status(run)), "TERMINATED \\(SUCCESS\\)")

  fo <- stats::as.formula("mpg ~ wt + hp", env = globalenv())
  fit <- function(fo, d) lm(fo, data = d)
  expect_identical(dbx_run_result(remote_job(fit, fo, mtcars, conn = conn)), fit(fo, mtcars))

  # An expression, with its globals; output and warnings come back.
  k <- 3
  run <- remote_job(quote({ cat("hello from the job\n"); warning("careful"); k * 2 }), conn = conn)
  expect_output(expect_warning(v <- dbx_run_result(run), "careful", class = "dbrxr_remote_warning"),
                "hello from the job")
  expect_identical(v, 6)
})

test_that("job task processes of the in-process local cluster do not see the client's credentials", {
  skip_if_no_rpy2()
  withr::local_envvar(DATABRICKS_TOKEN = "dapi-secret-1", DATABRICKS_CLIENT_SECRET = "secret-2",
                      AWS_SECRET_ACCESS_KEY = "aws-3", DATABRICKS_HOST = "https://example.cloud.databricks.com")
  conn <- local_test_cluster()
  run <- remote_job(function() Sys.getenv(c("DATABRICKS_TOKEN", "DATABRICKS_CLIENT_SECRET",
                                            "AWS_SECRET_ACCESS_KEY", "DATABRICKS_HOST")), conn = conn)
  seen <- dbx_run_result(run)
  expect_equal(unname(seen[1:3]), rep("", 3))
  # Nor its other settings: the environment is allow-listed (test-security-env.R).
  expect_false(identical(unname(seen[4]), "https://example.cloud.databricks.com"))
})

test_that("an R error in a run is a dbrxr_remote_error with the R message, the run's URL and its output", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  bad <- function(x) {
    cat("about to fail\n")
    stop("bad input: ", x)
  }
  run <- remote_job(bad, "zz", conn = conn, wait = TRUE)
  expect_identical(run$result, "FAILED")
  err <- expect_error(expect_output(dbx_run_result(run), "about to fail"), class = "dbrxr_remote_error")
  expect_identical(err$remote_message, "bad input: zz")
  expect_identical(err$run_url, run$url)
  expect_match(conditionMessage(err), "bad input: zz")
  expect_match(err$output, "the job's R code failed: bad input: zz", fixed = TRUE)
})

test_that("a running job is CANCELED within 2 s of dbx_run_cancel(), and its result is a classed error", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  run <- remote_job(function() { Sys.sleep(60); 1 }, conn = conn)
  deadline <- Sys.time() + 60
  while (dbx_run_status(run)$state != "RUNNING" && Sys.time() < deadline) Sys.sleep(0.1)
  Sys.sleep(1)  # R is in Sys.sleep() by now
  t0 <- Sys.time()
  done <- dbx_run_cancel(run)
  expect_lt(as.numeric(difftime(Sys.time(), t0, units = "secs")), 2)
  expect_identical(done$state, "TERMINATED")
  expect_identical(done$result, "CANCELED")
  expect_error(dbx_run_result(done), class = "dbrxr_run_cancelled_error")
})

test_that("unknown runs and jobs are classed errors; bad input fails before any request", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  expect_error(dbx_run(123, conn = conn), class = "dbrxr_run_not_found_error")
  expect_error(dbx_job_delete(456, conn = conn), class = "dbrxr_job_not_found_error")
  before <- local_stats(conn)$routes
  expect_error(remote_job(quote(1), schedule = "0 0 2 * * *", conn = conn), class = "dbrxr_schedule_error")
  expect_error(remote_job(quote(1), schedule = "0 0 2 * *", conn = conn), "6 or 7 fields")
  expect_error(remote_job(quote(1), schedule = "0 0 2 * * ?", timezone = "Mars/Base", conn = conn),
               class = "dbrxr_schedule_error")
  expect_error(remote_job(list(42), conn = conn), class = "dbrxr_input_error")
  expect_error(remote_job(quote(x), 1, conn = conn), class = "dbrxr_input_error")
  expect_error(remote_job(sum, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_run("a", conn = conn), class = "dbrxr_input_error")
  after <- local_stats(conn)$routes
  after[["GET /_local/stats"]] <- before[["GET /_local/stats"]] <- NULL
  expect_identical(after, before)
})

test_that("run now: a job without a schedule runs on demand", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  job <- remote_job(function(a) a * 10, 4, schedule = "0 0 2 ? * MON", timezone = "Europe/London",
                    name = "weekly", conn = conn)
  run <- dbx_job_run_now(job)
  expect_identical(run$run_type, "JOB_RUN")
  expect_identical(dbx_run_result(run), 40)
  dbx_job_delete(job)
})

test_that("a submit retried after dropped connections starts exactly one run", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  first <- remote_job(function() 7, conn = conn, wait = TRUE)
  spec <- dbrxr:::jobs_call(conn, "get_run", list(run_id = first$run_id))$tasks[[1]]
  task <- list(task_key = "dbrxr", existing_cluster_id = spec$existing_cluster_id,
               spark_python_task = list(python_file = spec$spark_python_task$python_file,
                                        parameters = I(unlist(spec$spark_python_task$parameters))))
  route <- "POST /api/2.2/jobs/runs/submit"
  sent <- function() local_stats(conn)$routes[[route]]$count %||% 0
  n0 <- sent()
  local_faults(conn, drop_rate = 0.6, seed = 11)
  res <- dbrxr:::jobs_call(conn, "submit", list(body = list(run_name = "retried", tasks = list(task))))
  local_faults(conn)
  expect_gt(sent() - n0, 1)  # it was sent again
  runs <- dbrxr:::jobs_call(conn, "list_runs", list(max = 100))
  expect_identical(sum(vapply(runs, function(r) identical(r$run_name, "retried"), TRUE)), 1L)
  # The same token again is the same run, not a new one.
  again <- dbrxr:::jobs_call(conn, "submit", list(body = list(run_name = "retried", tasks = list(task),
                                                              idempotency_token = res$idempotency_token)))
  expect_identical(again$run_id, res$run_id)
  expect_identical(dbx_run_result(dbx_run(res$run_id, conn = conn)), 7)
})

test_that("a run outlives the R process that submitted it; another one re-attaches and gets the value", {
  skip_if_no_rpy2()
  bin <- normalizePath(file.path(testthat::test_path(), "..", "..", "src", "rust", "target",
                                 "release", "dbrxr-local"), mustWork = FALSE)
  if (!file.exists(bin)) skip("dbrxr-local is not built (make local-bin)")
  server <- processx::process$new(bin, c("--port", "0", "--token", "dapi-jobs", "--python", local_python()),
                                  stdout = "|", stderr = "|")
  withr::defer(server$kill())
  server$poll_io(10000)
  url <- sub("^dbrxr-local listening on ", "", server$read_output_lines(1))
  submit <- function(url) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = "dapi-jobs", cluster_id = "local-cluster")
    run <- remote_job(function(n) { Sys.sleep(2); data.frame(n = n, sq = n^2) }, 1:3,
                      wait = FALSE, conn = conn)
    run$run_id
  }
  id <- callr::r(submit, args = list(url = url), libpath = .libPaths())
  conn <- dbx_connect(host = url, token = "dapi-jobs", cluster_id = "local-cluster")
  withr::defer(dbx_disconnect(conn))
  run <- dbx_run(id, conn = conn)
  expect_identical(dbx_run_result(run), data.frame(n = 1:3, sq = (1:3)^2))
})

test_that("job_cluster() runs on new job compute that is gone after the run", {
  skip_if_no_rpy2()
  conn <- local_test_cluster()
  expect_output(print(job_cluster(num_workers = 2)), "workers:  2")
  expect_error(job_cluster(num_workers = -1), class = "dbrxr_input_error")
  run <- remote_job(function() Sys.getpid(), cluster = job_cluster(), conn = conn, wait = TRUE)
  expect_match(run$cluster, "-job-")
  pid <- dbx_run_result(run)
  expect_false(file.exists(file.path("/proc", pid)))
})

test_that("a job scores a 5,000-row table with remote_score_table(): identical() to local predict()", {
  # 100,000 rows: test-slow-jobs.R.
  expect_job_scores_table(shared_spark_cluster("main.jobs"), n = 5000)
})
