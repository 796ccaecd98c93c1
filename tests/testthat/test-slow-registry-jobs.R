# The production loop's nightly job: a scheduled job scoring
# models:/main.s.m@champion resolves the alias at each run, so moving it with
# dbx_model_alias() changes what the next run scores without touching the
# job; a run whose alias is gone fails with the registry's own class. Runs
# are started with dbx_job_run_now() (no clock waited on), on the run's
# shared Spark cluster (schema main.s). Slow tier: each run's task process
# starts its own Spark; the file took 4 min 20 s alone on 2 loaded cores.

test_that("a scheduled job scoring models:/main.s.m@champion follows the alias from run to run", {
  skip_if_not_slow()
  skip_if_no_mlflow()
  conn <- shared_spark_cluster("main.s")
  name <- "main.s.m"
  ex <- head(mtcars[c("wt", "hp")])
  fit1 <- lm(mpg ~ wt, data = mtcars)
  fit2 <- lm(mpg ~ wt + hp, data = mtcars)
  v1 <- remote_log_model(fit1, name, input_example = ex, alias = "champion", conn = conn)
  v2 <- remote_log_model(fit2, name, input_example = ex, conn = conn)
  cars <- data.frame(id = seq_len(nrow(mtcars)), wt = mtcars$wt, hp = mtcars$hp)
  dbx_write_table(cars, "main.s.cars", mode = "overwrite", conn = conn)
  job <- remote_job(quote(remote_score_table("models:/main.s.m@champion", "main.s.cars", "main.s.scores",
                                             keep = "id", mode = "overwrite")),
                    schedule = "0 0 2 * * ?", name = "nightly-scores", conn = conn)
  withr::defer(dbx_job_delete(job))
  scores <- function() {
    out <- dbx_read_table("main.s.scores", conn = conn)
    unname(out$.pred[order(out$id)])
  }

  run1 <- dbx_job_run_now(job)
  dbx_run_result(run1)
  expect_identical(scores(), unname(predict(fit1, mtcars)))

  dbx_model_alias(name, "champion", v2$version, conn = conn)
  run2 <- dbx_job_run_now(job)
  dbx_run_result(run2)
  expect_identical(scores(), unname(predict(fit2, mtcars)))

  # The alias is gone at the next run: the registry's error, not a table's.
  dbx_model_alias_delete(name, "champion", conn = conn)
  run3 <- dbx_job_run_now(job)
  expect_error(dbx_run_result(run3), class = "dbrxr_model_alias_not_found_error")

  runs <- dbx_job_runs(job)
  runs <- runs[runs$trigger == "ONE_TIME", ]  # a 02:00 UTC firing during the test is not ours
  expect_identical(runs$run_id, c(run3$run_id, run2$run_id, run1$run_id))
  expect_identical(runs$state, rep("TERMINATED", 3))
  expect_identical(runs$result, c("FAILED", "SUCCESS", "SUCCESS"))
  expect_identical(dbx_jobs(conn, name = "nightly-scores")$last_state, "FAILED")
})
