# A job's run history, ids as users copy and paste them, Ctrl-C while waiting
# for a run, and what remote_job() checks before it submits. R jobs on the
# run's shared rpy2 cluster (its own names); the library test has a cluster
# of its own (it sets the connection's library).

test_that("run and job ids are accepted as numbers, strings of digits and URLs, and print in full", {
  conn <- shared_cluster()
  job <- remote_job(function() 1, schedule = "0 0 2 1 1 ? 2030", name = "jr-ids", conn = conn)
  withr::defer(dbx_job_delete(job))
  expect_type(job$job_id, "character")
  run <- dbx_job_run_now(job)
  id <- run$run_id
  expect_type(id, "character")
  expect_match(id, "^[1-9][0-9]{10,}$")  # the local cluster's ids are 12 or 13 digits, as Databricks'
  expect_identical(dbx_run(id, conn = conn)$run_id, id)
  expect_identical(dbx_run(as.numeric(id), conn = conn)$run_id, id)
  expect_identical(dbx_run(run$url, conn = conn)$run_id, id)
  expect_identical(dbx_run(sprintf("https://dbc-1.cloud.databricks.com/jobs/%s/runs/%s?o=1", job$job_id, id),
                           conn = conn)$run_id, id)
  expect_identical(dbx_run_result(dbx_run(paste0(" ", id, " "), conn = conn)), 1)
  # The run verbs take an id as well.
  expect_identical(dbx_run_result(id, conn = conn), 1)
  expect_identical(dbx_run_status(run$url, conn = conn)$result, "SUCCESS")
  expect_identical(dbx_run_cancel(as.numeric(id), conn = conn)$result, "SUCCESS")  # ended: left as it is
  expect_identical(dbx_job_runs(as.numeric(job$job_id), conn = conn)$run_id, id)
  expect_identical(dbx_job_runs(sprintf("https://dbc-1.cloud.databricks.com/#job/%s", job$job_id),
                                conn = conn)$run_id, id)

  # Printed in full, never with an exponent.
  jobs <- dbx_jobs(conn)
  expect_type(jobs$job_id, "character")
  printed <- capture.output(print(jobs))
  expect_false(any(grepl("[0-9]e\\+[0-9]", printed)))
  expect_true(any(grepl(job$job_id, printed, fixed = TRUE)))
  expect_output(print(run), id, fixed = TRUE)

  # Refused before any request.
  before <- local_stats(conn)$routes
  for (bad in list("3574646899253x", "", 0, -5, 1.5, NA, c(1, 2), "https://host/#job/12", TRUE)) {
    expect_error(dbx_run(bad, conn = conn), class = "dbrxr_input_error")
  }
  expect_error(dbx_job_runs("https://host/#job/x", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_run_result(list(id), conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_run_status("run-1", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_job_runs(job, limit = 0), class = "dbrxr_input_error")
  after <- local_stats(conn)$routes
  after[["GET /_local/stats"]] <- before[["GET /_local/stats"]] <- NULL
  expect_identical(after, before)
})

test_that("dbx_job_runs() lists a job's runs newest first with their states; dbx_jobs() shows the last one", {
  conn <- shared_cluster()
  job <- remote_job(function(fail) if (fail) stop("asked to fail") else 42, FALSE,
                    schedule = "0 0 2 1 1 ? 2030", name = "jr-history", conn = conn)
  withr::defer(dbx_job_delete(job))
  never <- dbx_jobs(conn, name = "jr-history")
  expect_true(is.na(never$last_run_id))
  first <- dbx_job_run_now(job)
  expect_identical(dbx_run_result(first), 42)
  second <- dbx_job_run_now(job)
  second <- dbrxr:::run_wait(second)
  runs <- dbx_job_runs(job)
  expect_s3_class(runs, "dbx_job_runs")
  expect_identical(names(runs), c("run_id", "state", "result", "start", "duration", "trigger", "url"))
  expect_identical(runs$run_id, c(second$run_id, first$run_id))
  expect_identical(runs$state, c("TERMINATED", "TERMINATED"))
  expect_identical(runs$result, c("SUCCESS", "SUCCESS"))
  expect_identical(runs$trigger, c("ONE_TIME", "ONE_TIME"))
  expect_s3_class(runs$start, "POSIXct")
  expect_true(all(runs$duration >= 0 & runs$duration < 600))
  expect_identical(dbx_job_runs(job, limit = 1)$run_id, second$run_id)
  out <- capture.output(print(runs))
  expect_identical(out[1], "<dbx_job_runs> 2 runs, newest first")
  expect_true(any(grepl(paste(second$run_id, "TERMINATED", "SUCCESS"), out, fixed = TRUE)))

  listed <- dbx_jobs(conn, name = "jr-history")
  expect_identical(listed$last_run_id, second$run_id)
  expect_identical(listed$last_state, "SUCCESS")
  expect_s3_class(listed$last_start, "POSIXct")
})

test_that("Ctrl-C in dbx_run_result() stops waiting, says the run is still RUNNING, and leaves it running", {
  skip_on_os("windows")
  conn <- shared_cluster()
  run <- remote_job(function() { Sys.sleep(60); 1 }, name = "jr-ctrl-c", conn = conn)
  withr::defer(dbx_run_cancel(run, wait = FALSE))
  child <- callr::r_bg(function(url, token, cluster, id) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster)
    run <- dbx_run(id, conn = conn)
    withCallingHandlers(
      tryCatch({
        cat("waiting\n")
        dbx_run_result(run, progress = FALSE)
        cat("returned\n")
      }, interrupt = function(i) cat("interrupted\n")),
      message = function(m) {
        cat("message:", conditionMessage(m), "\n")
        invokeRestart("muffleMessage")
      })
    cat("state after:", dbx_run_status(run)$state, "\n")
  }, args = list(url = conn$local_info$url, token = shared_cluster_token,
                 cluster = conn$local_info$cluster_id, id = run$run_id),
  libpath = .libPaths(), stdout = "|", stderr = "2>&1")
  withr::defer(child$kill())
  out <- character()
  deadline <- Sys.time() + 60
  while (!any(out == "waiting") && Sys.time() < deadline && child$is_alive()) {
    child$poll_io(200)
    out <- c(out, child$read_output_lines())
  }
  expect_true(any(out == "waiting"))
  Sys.sleep(1.5)  # in the wait loop by now
  child$interrupt()
  child$wait(20000)
  out <- c(out, child$read_all_output_lines())
  text <- paste(out, collapse = "\n")
  expect_match(text, "interrupted")
  expect_match(text, "Stopped waiting; the run is still RUNNING.", fixed = TRUE)
  expect_match(text, sprintf("dbx_run(\"%s\")", run$run_id), fixed = TRUE)
  expect_no_match(text, "cancelled")
  expect_match(text, "state after: RUNNING")
  expect_identical(dbx_run_status(run)$state, "RUNNING")
})

test_that("remote_job() checks the packages the job needs before submitting, with the connection's library by default", {
  # A cluster of its own: remote_library() sets its connection's library.
  conn <- local_test_cluster()
  local_test_packages("dbxA")  # this session only
  submits <- function() local_stats(conn)$routes[["POST /api/2.2/jobs/runs/submit"]]$count %||% 0
  n0 <- submits()
  f <- function() class(dbxA::dbxA_model(1))
  err <- expect_error(remote_job(f, conn = conn), class = "dbrxr_missing_package_error")
  expect_identical(err$package, "dbxA")
  expect_match(conditionMessage(err), "remote_library(\"dbxA\", conn = conn)", fixed = TRUE)
  expect_identical(submits(), n0)  # nothing was submitted
  # The hint's call works: the connection's library is the job's by default.
  suppressMessages(remote_library("dbxA", repos = library_test_repo()$url, conn = conn))
  expect_identical(dbx_run_result(remote_job(f, conn = conn)), class(dbxA::dbxA_model(1)))
})
