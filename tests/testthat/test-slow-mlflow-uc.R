# A job task scores a models:/...@champion URI: the recorded table request
# carries the URI, and the task resolves it when it runs, through the
# Unity Catalog registry with the credentials the cluster gives its task
# processes (as a Databricks task does). ~2 minutes on 2 loaded cores.

test_that("a job task scores models:/...@champion through the registry (the cluster's credentials)", {
  skip_if_not_slow()
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  remote_log_model(fit, "main.ml.uc_job", input_example = head(mtcars[c("wt", "hp")]),
                   alias = "champion", conn = conn)
  cars <- data.frame(id = seq_len(nrow(mtcars)), wt = mtcars$wt, hp = mtcars$hp)
  dbx_write_table(cars, "main.ml.uc_job_cars", mode = "overwrite", conn = conn)
  run <- remote_job(quote(remote_score_table("models:/main.ml.uc_job@champion", "main.ml.uc_job_cars",
                                             "main.ml.uc_job_scores", keep = "id", mode = "overwrite")),
                    conn = conn, wait = TRUE)
  dbx_run_result(run)
  out <- dbx_read_table("main.ml.uc_job_scores", conn = conn)
  out <- out[order(out$id), ]
  expect_identical(unname(out$.pred), unname(predict(fit, mtcars)))
})
