# The slow tier of test-jobs.R: a cron schedule waited on, and a job that
# scores 100,000 rows.

test_that("a schedule firing every 2 s makes at least 2 runs in 10 s, and dbx_job_delete() stops it", {
  skip_if_not_slow()
  # A cluster of its own: its scheduler fires every 2 s while the test waits.
  conn <- local_test_cluster()
  job <- remote_job(quote(Sys.time()), schedule = "0/2 * * * * ?", name = "every-2s", conn = conn)
  expect_s3_class(job, "dbx_job")
  expect_output(print(job), "0/2 \\* \\* \\* \\* \\? \\(UTC\\), UNPAUSED")
  listed <- dbx_jobs(conn)
  expect_true(job$job_id %in% listed$job_id)
  expect_identical(listed$schedule[listed$job_id == job$job_id], "0/2 * * * * ?")
  Sys.sleep(10)
  runs <- dbrxr:::job_runs(job)
  expect_gte(length(runs), 2)
  expect_true(all(vapply(runs, `[[`, "", "trigger") == "PERIODIC"))
  dbx_job_delete(job)
  n <- length(runs)
  Sys.sleep(3)
  expect_false(job$job_id %in% dbx_jobs(conn)$job_id)
  after <- dbrxr:::jobs_call(conn, "list_runs", list(job_id = job$job_id, max = 100))
  expect_lte(length(after), n + 1)  # one may have fired while we counted
  # A finished periodic run has the expression's value.
  done <- Filter(function(r) identical(r$result, "SUCCESS"), lapply(runs, dbx_run_status))
  expect_gte(length(done), 1)
  expect_s3_class(dbx_run_result(done[[1]]), "POSIXct")
})

test_that("a job scores a 100,000-row table with remote_score_table(): identical() to local predict()", {
  skip_if_not_slow()
  expect_job_scores_table(shared_spark_cluster("main.jobs"), n = 100000)
})
