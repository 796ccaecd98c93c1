# Table scoring on the local cluster's Spark (local[2]): remote_score_table()
# over a generated table against local predict() on the same rows already in
# R memory, and the peak RSS growth of the driver's context process (the table
# is never gathered on the driver). Rows: DBRXR_BENCH_TABLE_ROWS (default 1e6;
# the issue's 1e7 takes too long on a shared 2-core machine).

bench_table <- function() {
  n <- as.numeric(Sys.getenv("DBRXR_BENCH_TABLE_ROWS", "1e6"))
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  cols <- paste0("V", 1:10)
  gen <- paste0("rand(", 1:10, ") AS ", cols, collapse = ", ")
  dbx_exec(paste0(
    "spark.sql('CREATE SCHEMA IF NOT EXISTS main.bench')\n",
    "spark.sql('DROP TABLE IF EXISTS main.bench.t')\n",
    "spark.sql('CREATE TABLE main.bench.t USING parquet AS SELECT id, ", gen,
    " FROM range(", format(n, scientific = FALSE), ")')"), conn)
  set.seed(42)
  train <- as.data.frame(matrix(runif(2e4), ncol = 10))
  names(train) <- cols
  models <- list(
    lm = stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = train),
    ranger = ranger::ranger(stats::as.formula("V1 ~ .", env = globalenv()), data = train,
                            num.trees = 50, seed = 1, num.threads = 2))
  pid <- as.integer(sub(".*: ", "", dbx_exec("import os; os.getpid()", conn)))
  rss <- function(field) {
    st <- readLines(sprintf("/proc/%d/status", pid))
    as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", grep(paste0("^", field, ":"), st, value = TRUE))) / 1024
  }
  # Warm up Spark and the executors' R.
  remote_score_table(models$lm, dbx_sql("SELECT * FROM main.bench.t LIMIT 1000"),
                     "main.bench.warm", mode = "overwrite", conn = conn)
  data <- dbx_read_table("main.bench.t", conn = conn)
  out <- list()
  for (name in names(models)) {
    fit <- models[[name]]
    before <- rss("VmRSS")
    # Reset the peak (VmHWM) to the current RSS: Linux's clear_refs "5".
    writeLines("5", sprintf("/proc/%d/clear_refs", pid))
    post <- if (name == "ranger") function(p) p$predictions
    remote <- system.time(remote_score_table(fit, "main.bench.t", paste0("main.bench.out_", name),
                                             keep = "id", mode = "overwrite", postprocess = post,
                                             conn = conn))[["elapsed"]]
    peak <- rss("VmHWM")
    local <- system.time(predict(fit, data))[["elapsed"]]
    # The same job converting batches with pandas + rpy2's pandas2ri instead.
    old <- options(dbrxr.table_convert = "pandas2ri")
    slow <- system.time(remote_score_table(fit, "main.bench.t", paste0("main.bench.p2ri_", name),
                                           keep = "id", mode = "overwrite", postprocess = post,
                                           conn = conn))[["elapsed"]]
    options(old)
    out[[name]] <- data.frame(model = name, rows = format(n, big.mark = ",", scientific = FALSE),
                              remote_s = round(remote, 1),
                              rows_per_s = format(round(n / remote), big.mark = ","),
                              local_predict_s = round(local, 1),
                              ratio = round(remote / local, 1),
                              pandas2ri_s = round(slow, 1),
                              speedup_vs_pandas2ri = round(slow / remote, 1),
                              driver_rss_growth_mb = round(peak - before))
  }
  list(remote_score_table_on_local_2 = do.call(rbind, out))
}
