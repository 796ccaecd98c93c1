# The slow tier of test-mlflow.R: a registered model scores 100,000 rows.

test_that("remote_score_table() with a models:/ URI over 100,000 rows is identical() to predict()", {
  skip_if_not_slow()
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt + hp + factor(cyl), data = mtcars)
  remote_log_model(fit, "main.ml.mpg_slow", input_example = head(mtcars[c("wt", "hp", "cyl")]),
                   alias = "champion", conn = conn)
  score_cars_by_uri(conn, "models:/main.ml.mpg_slow@champion", fit, n = 1e5)
})
