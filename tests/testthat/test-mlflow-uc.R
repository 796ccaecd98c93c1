# MLflow as on a Unity Catalog workspace: Python's own client, given only a
# workspace's variables (DATABRICKS_HOST, DATABRICKS_TOKEN, tracking
# `databricks`, registry `databricks-uc`), logs, registers, aliases, searches
# and loads models in the local cluster's registry, the one R's verbs use.
# A job task scoring models:/...@champion: test-slow-mlflow-uc.R (what the
# task's process gets is checked in test-jobs.R).

test_that("Python's MLflow with only a workspace's variables registers, aliases, loads by alias and predicts R's exact values", {
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  v <- remote_log_model(fit, "main.ml.uc_mpg", input_example = head(mtcars[c("wt", "hp")]),
                        alias = "champion", conn = conn)
  expect_equal(v$alias, "champion")

  dir <- withr::local_tempdir()
  utils::write.csv(mtcars[c("wt", "hp")], file.path(dir, "in.csv"), row.names = FALSE)
  writeLines(c(
    "import sys, numpy as np, pandas as pd, mlflow",
    "from mlflow.models import infer_signature",
    "d = sys.argv[1]",
    "df = pd.read_csv(d + '/in.csv').astype('float64')  # as MLflow's users cast: hp is int64 in a CSV",
    "# R's model, registered by remote_log_model(): loaded by its alias",
    "r = mlflow.pyfunc.load_model('models:/main.ml.uc_mpg@champion')",
    "np.asarray(r.predict(df)).astype('float64').tofile(d + '/r.bin')",
    "# A Python model: logged to a run, registered in Unity Catalog, aliased",
    "class Twice(mlflow.pyfunc.PythonModel):",
    "    def predict(self, context, model_input, params=None):",
    "        return model_input['wt'] * 2.0",
    "mlflow.set_experiment('/Shared/dbrxr-uc-test')",
    "with mlflow.start_run():",
    "    info = mlflow.pyfunc.log_model(name='model', python_model=Twice(),",
    "                                   signature=infer_signature(df, df['wt'] * 2.0),",
    "                                   registered_model_name='main.ml.uc_twice')",
    "c = mlflow.MlflowClient()",
    "c.set_registered_model_alias('main.ml.uc_twice', 'champion', info.registered_model_version)",
    "mv = c.get_model_version_by_alias('main.ml.uc_twice', 'champion')",
    "names = sorted(m.name for m in c.search_registered_models())",
    "p = mlflow.pyfunc.load_model('models:/main.ml.uc_twice@champion').predict(df)",
    "np.asarray(p).astype('float64').tofile(d + '/py.bin')",
    "open(d + '/facts.txt', 'w').write('\\n'.join([mlflow.get_registry_uri(), str(mv.version), mv.status] + names) + '\\n')"),
    file.path(dir, "uc.py"))
  # Only what dbx_mlflow_env() gives (and PATH and HOME): a workspace's
  # variables, nothing of the local cluster's internals.
  mlenv <- dbx_mlflow_env(conn)
  expect_setequal(names(mlenv), c("DATABRICKS_HOST", "DATABRICKS_TOKEN", "MLFLOW_TRACKING_URI",
                                  "MLFLOW_REGISTRY_URI", "MLFLOW_S3_ENDPOINT_URL"))
  expect_identical(mlenv[["DATABRICKS_TOKEN"]], shared_spark_token)
  shown <- capture.output(print(mlenv))
  expect_false(any(grepl(shared_spark_token, shown, fixed = TRUE)))
  expect_true(any(grepl("DATABRICKS_TOKEN=<hidden>", shown, fixed = TRUE)))
  env <- c(PATH = Sys.getenv("PATH"), HOME = Sys.getenv("HOME"), unclass(mlenv))
  res <- processx::run(mlflow_python(), c(file.path(dir, "uc.py"), dir), env = env,
                       error_on_status = FALSE, timeout = 600)
  if (res$status != 0) fail(substr(res$stderr, max(1, nchar(res$stderr) - 3000), nchar(res$stderr)))
  n <- nrow(mtcars)
  expect_identical(readBin(file.path(dir, "r.bin"), "double", n), unname(predict(fit, mtcars)))
  expect_identical(readBin(file.path(dir, "py.bin"), "double", n), mtcars$wt * 2)
  facts <- readLines(file.path(dir, "facts.txt"))
  expect_equal(facts[1:3], c("databricks-uc", "1", "READY"))
  expect_true(all(c("main.ml.uc_mpg", "main.ml.uc_twice") %in% facts[-(1:3)]))

  # One registry: what Python registered is what R lists.
  m <- dbx_models(conn)
  expect_equal(m$aliases[m$name == "main.ml.uc_twice"], "champion")
  expect_true("main.ml.uc_mpg" %in% m$name)

  # A deleted model leaves nothing in the cluster's storage (its versions'
  # files, their directories, pending markers).
  state <- conn$local_info$state_dir
  expect_true(dir.exists(file.path(state, "uc-models", "main", "ml", "uc_twice")))
  res <- processx::run(mlflow_python(), c("-c", "import mlflow; mlflow.MlflowClient().delete_registered_model('main.ml.uc_twice')"),
                       env = env, error_on_status = FALSE, timeout = 300)
  expect_identical(res$status, 0L, info = res$stderr)
  expect_false(dir.exists(file.path(state, "uc-models", "main", "ml", "uc_twice")))
  expect_false(any(startsWith(list.files(file.path(state, "uc-registry"), recursive = TRUE), "pending/main.ml.uc_twice@")))
  expect_false("main.ml.uc_twice" %in% dbx_models(conn)$name)
})
