# What the local registry refuses that Unity Catalog refuses, through dbrxr's
# logging path. The rules every client meets (three-level names, 255
# characters, a signature with inputs and outputs) are checked by the
# workspace's MLflow routes: src/rust/tests/local_security.rs. Here: the rule
# only a run of predict() can check, done where dbrxr logs a model (its
# input example goes through predict() before anything is logged). The run's
# shared Spark cluster (its MLflow server, schema main.ml) serves the file.

test_that("a model whose predict() gives 1 value for 10 rows is refused and nothing is registered", {
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt, data = mtcars)
  e <- expect_error(remote_log_model(fit, "main.ml.one_value_only", postprocess = function(p) mean(p),
                                     input_example = mtcars[1:10, "wt", drop = FALSE], conn = conn),
                    class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "1 value for the 10 rows", fixed = TRUE)
  expect_error(remote_score("models:/main.ml.one_value_only/1", mtcars[1:2, "wt", drop = FALSE], conn = conn),
               class = "dbrxr_not_found_error")
})
