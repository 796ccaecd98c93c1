# A registered R model scoring a table on the local cluster's Spark (local[2]):
# remote_score_table("models:/...") against MLflow's own route for the same
# model, mlflow.pyfunc.spark_udf() (pandas batches through the pyfunc's
# conversion into R), on the same table and Spark. Both outputs are compared
# with local predict() (identical()). Rows: DBRXR_BENCH_MLFLOW_ROWS (default 1e6).
# Each job runs once after a warm-up of both routes.

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
  udf_job <- function(output) {
    code <- paste0(
      "import mlflow, dbrxr_spark\n",
      "udf = mlflow.pyfunc.spark_udf(spark, '", uri, "', result_type='double', env_manager='local')\n",
      "src = spark.table(dbrxr_spark.spark_name('main.bench.m'))\n",
      "out = src.select('id', udf(*[src[c] for c in ", deparse_py(cols[-1]), "]).alias('.pred'))\n",
      "out.write.mode('overwrite').saveAsTable(dbrxr_spark.spark_name('", output, "'))\n")
    system.time(dbx_exec(code, conn))[["elapsed"]]
  }
  ours_job <- function(output) {
    system.time(remote_score_table(uri, "main.bench.m", output, keep = "id", mode = "overwrite",
                                   conn = conn))[["elapsed"]]
  }
  # Warm-up: Spark's JIT, the executors' R, the pyfunc's model download.
  remote_score_table(uri, dbx_sql("SELECT * FROM main.bench.m LIMIT 1000"), "main.bench.warm",
                     mode = "overwrite", conn = conn)
  udf_job("main.bench.warm_udf")
  ours <- ours_job("main.bench.ours")
  udf <- udf_job("main.bench.udf")
  data <- dbx_read_table("main.bench.m", conn = conn)
  data <- data[order(data$id), ]
  expected <- unname(predict(fit, data))
  same <- function(tbl) {
    out <- dbx_read_table(tbl, conn = conn)
    identical(unname(out$.pred[order(out$id)]), expected)
  }
  list(registered_model_table_scoring = data.frame(
    model = "lm (10 columns)", rows = format(n, big.mark = ",", scientific = FALSE),
    remote_score_table_s = round(ours, 1), spark_udf_s = round(udf, 1),
    speedup = round(udf / ours, 1),
    identical_remote_score_table = same("main.bench.ours"),
    identical_spark_udf = same("main.bench.udf")))
}

deparse_py <- function(x) paste0("[", paste0("'", x, "'", collapse = ", "), "]")
