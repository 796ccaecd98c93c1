# A registered R model scoring a table on the local cluster's Spark (local[2]):
# remote_score_table("models:/...") against MLflow's own route for the same
# model, mlflow.pyfunc.spark_udf() (pandas batches through the pyfunc's
# conversion into R), on the same table and Spark. Both outputs are compared
# with local predict() (identical()). Rows: DBRXR_BENCH_MLFLOW_ROWS (default 1e6).
# Each job runs three times (medians) after a warm-up of both routes. remote_score_table() is
# timed from R (all of it: the request, the probe, the job, the catalog);
# spark_udf() and the plain copy inside the context (their own Python code
# only, without dbx_exec()'s polling), which favours them.

bench_mlflow <- function() {
  n <- as.numeric(Sys.getenv("DBRXR_BENCH_MLFLOW_ROWS", "1e6"))
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  cols <- paste0("V", 1:10)
  gen <- paste0("rand(", 1:10, ") AS ", cols, collapse = ", ")
  dbx_exec(paste0(
    "spark.sql('CREATE SCHEMA IF NOT EXISTS main.bench')\n",
    "spark.sql('DROP TABLE IF EXISTS main.bench.m')\n",
    "spark.sql('CREATE TABLE main.bench.m USING parquet AS SELECT id, ", gen,
    " FROM range(", format(n, scientific = FALSE), ")')"), conn)
  set.seed(42)
  train <- as.data.frame(matrix(runif(2e4), ncol = 10))
  names(train) <- cols
  fit <- stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = train)
  v <- remote_log_model(fit, "main.bench.lm", input_example = head(train[cols[-1]]),
                        alias = "champion", conn = conn)
  uri <- "models:/main.bench.lm@champion"
  in_context <- function(code) {
    out <- dbx_exec(paste0("import time as _t\n_t0 = _t.perf_counter()\n", code,
                           "print(_t.perf_counter() - _t0)\n"), conn)
    as.numeric(utils::tail(strsplit(trimws(out), "\n")[[1]], 1))
  }
  udf_job <- function(output) {
    in_context(paste0(
      "import mlflow\n",
      "udf = mlflow.pyfunc.spark_udf(spark, '", uri, "', result_type='double', env_manager='local')\n",
      "src = spark.table('main.bench.m')\n",
      "out = src.select('id', udf(*[src[c] for c in ", deparse_py(cols[-1]), "]).alias('.pred'))\n",
      "out.write.mode('overwrite').saveAsTable('", output, "')\n"))
  }
  # The floor: the same rows read and written by Spark, with no scoring.
  copy_job <- function() {
    in_context(paste0(
      "src = spark.table('main.bench.m')\n",
      "src.select('id', src['V1'].alias('.pred')).write.mode('overwrite')",
      ".saveAsTable('main.bench.copy')\n"))
  }
  ours_job <- function(output) {
    system.time(remote_score_table(uri, "main.bench.m", output, keep = "id", mode = "overwrite",
                                   conn = conn))[["elapsed"]]
  }
  # Warm-up: Spark's JIT, the executors' R, the pyfunc's model download.
  remote_score_table(uri, dbx_sql("SELECT * FROM main.bench.m LIMIT 1000"), "main.bench.warm",
                     mode = "overwrite", conn = conn)
  udf_job("main.bench.warm_udf")
  copy_job()
  # Three rounds, alternating; medians (this VM's speed drifts within minutes).
  times <- replicate(3, c(ours = ours_job("main.bench.ours"), udf = udf_job("main.bench.udf"),
                          copy = copy_job()))
  med <- apply(times, 1, stats::median)
  ours <- med[["ours"]]
  udf <- med[["udf"]]
  copy <- med[["copy"]]
  data <- dbx_read_table("main.bench.m", conn = conn)
  data <- data[order(data$id), ]
  expected <- unname(predict(fit, data))
  same <- function(tbl) {
    out <- dbx_read_table(tbl, conn = conn)
    identical(unname(out$.pred[order(out$id)]), expected)
  }
  list(registered_model_table_scoring = data.frame(
    model = "lm (10 columns)", rows = format(n, big.mark = ",", scientific = FALSE),
    remote_score_table_s = round(ours, 2), spark_udf_s = round(udf, 2),
    speedup = round(udf / ours, 2), plain_copy_s = round(copy, 2),
    identical_remote_score_table = same("main.bench.ours"),
    identical_spark_udf = same("main.bench.udf")))
}

deparse_py <- function(x) paste0("[", paste0("'", x, "'", collapse = ", "), "]")
