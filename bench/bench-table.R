# Table scoring on the local cluster's Spark (local[2]): remote_score_table()
# over a generated table against local predict() on the same rows already in
# R memory, and the peak RSS growth of the driver's context process (the table
# is never gathered on the driver). Rows: DBRXR_BENCH_TABLE_ROWS (default 1e7).
# Times are the median of 3 runs when a run takes under a minute (Spark's JIT
# makes the first job of a session slower), else of 1; the first run's time is
# shown too. The pandas2ri job runs once, after the others. Besides whole
# jobs, the conversion itself is compared: the seconds the executors spent
# turning Arrow batches into R data frames (summed over batches, from the
# context's dbrxr_spark.LAST_JOB), by buffers or by pandas2ri.

bench_table <- function() {
  n <- as.numeric(Sys.getenv("DBRXR_BENCH_TABLE_ROWS", "1e7"))
  token <- "table-bench-token-0123456789abcdef"
  conn <- local_cluster(token = token)
  on.exit(dbx_disconnect(conn), add = TRUE)
  # The local predict() side reads the table through a second connection (its
  # own context), so the scoring context's RSS never holds the table.
  li <- conn$local_info
  reader <- dbx_connect(host = li$url, token = token, cluster_id = li$cluster_id)
  on.exit(dbx_disconnect(reader), add = TRUE)
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
  data <- dbx_read_table("main.bench.t", conn = reader)
  out <- list()
  for (name in names(models)) {
    fit <- models[[name]]
    before <- rss("VmRSS")
    # Reset the peak (VmHWM) to the current RSS: Linux's clear_refs "5".
    writeLines("5", sprintf("/proc/%d/clear_refs", pid))
    post <- if (name == "ranger") function(p) p$predictions
    score <- function() {
      system.time(remote_score_table(fit, "main.bench.t", paste0("main.bench.out_", name),
                                     keep = "id", mode = "overwrite", postprocess = post,
                                     conn = conn))[["elapsed"]]
    }
    first <- score()
    runs <- c(first, if (first < 60) c(score(), score()))
    convert <- last_convert_seconds(conn)
    remote <- stats::median(runs)
    peak <- rss("VmHWM")
    local_runs <- vapply(seq_along(runs), function(i) system.time(predict(fit, data))[["elapsed"]], 0)
    local <- stats::median(local_runs)
    # The same job converting batches with pandas + rpy2's pandas2ri instead.
    old <- options(dbrxr.table_convert = "pandas2ri")
    slow <- system.time(remote_score_table(fit, "main.bench.t", paste0("main.bench.p2ri_", name),
                                           keep = "id", mode = "overwrite", postprocess = post,
                                           conn = conn))[["elapsed"]]
    options(old)
    slow_convert <- last_convert_seconds(conn)
    out[[name]] <- data.frame(model = name, rows = format(n, big.mark = ",", scientific = FALSE),
                              remote_s = round(remote, 1), first_run_s = round(first, 1),
                              runs = length(runs),
                              rows_per_s = format(round(n / remote), big.mark = ","),
                              local_predict_s = round(local, 2),
                              ratio = round(remote / local, 1),
                              pandas2ri_s = round(slow, 1),
                              speedup_vs_pandas2ri = round(slow / remote, 1),
                              convert_s = round(convert, 2),
                              pandas2ri_convert_s = round(slow_convert, 1),
                              convert_speedup = round(slow_convert / convert, 1),
                              driver_rss_growth_mb = round(peak - before))
  }
  list(remote_score_table_on_local_2 = do.call(rbind, out),
       arrow_vs_pandas2ri_mixed_columns = bench_table_mixed(conn, n / 10))
}

# Batch conversion on a table of mixed columns, as users' tables are: 5
# doubles, an integer, two strings (20 and 50 distinct values), a date and a
# boolean. lm over all but the date; the same job with pandas2ri, each run once
# after a warm-up.
bench_table_mixed <- function(conn, n) {
  dbx_exec(paste0(
    "spark.sql('DROP TABLE IF EXISTS main.bench.mixed')\n",
    "spark.sql(\"CREATE TABLE main.bench.mixed USING parquet AS SELECT id, ",
    paste0("rand(", 1:5, ") AS d", 1:5, collapse = ", "),
    ", cast(rand(6) * 1000 AS int) AS i1, concat('g', cast(floor(rand(7) * 20) AS int)) AS s1",
    ", concat('h', cast(floor(rand(8) * 50) AS int)) AS s2",
    ", date_add('2020-01-01', cast(rand(9) * 1000 AS int)) AS dt, rand(10) > 0.5 AS b1",
    " FROM range(", format(n, scientific = FALSE), ")\")"), conn)
  set.seed(7)
  m <- 5000
  train <- data.frame(d1 = runif(m), d2 = runif(m), d3 = runif(m), d4 = runif(m), d5 = runif(m),
                      i1 = sample.int(1000, m, replace = TRUE) - 1L,
                      s1 = paste0("g", sample(0:19, m, replace = TRUE)),
                      s2 = paste0("h", sample(0:49, m, replace = TRUE)),
                      b1 = runif(m) > 0.5)
  train$y <- with(train, d1 + 2 * d2 - d3 + i1 / 1000 + nchar(s1) + b1 + rnorm(m))
  fit <- stats::lm(stats::as.formula("y ~ d1 + d2 + d3 + d4 + d5 + i1 + s1 + s2 + b1",
                                     env = globalenv()), data = train)
  score <- function(convert) {
    old <- options(dbrxr.table_convert = convert)
    on.exit(options(old))
    system.time(remote_score_table(fit, "main.bench.mixed", "main.bench.mixed_out", keep = "id",
                                   mode = "overwrite", conn = conn))[["elapsed"]]
  }
  score(NULL)
  arrow <- score(NULL)
  convert <- last_convert_seconds(conn)
  p2ri <- score("pandas2ri")
  p2ri_convert <- last_convert_seconds(conn)
  data.frame(rows = format(n, big.mark = ",", scientific = FALSE),
             columns = "5 double, 1 int, 2 string, 1 date, 1 boolean",
             arrow_s = round(arrow, 1), pandas2ri_s = round(p2ri, 1),
             speedup = round(p2ri / arrow, 1),
             convert_s = round(convert, 2), pandas2ri_convert_s = round(p2ri_convert, 1),
             convert_speedup = round(p2ri_convert / convert, 1))
}

# Seconds the last scoring job's executors spent converting batches to R.
last_convert_seconds <- function(conn) {
  as.numeric(dbx_exec("import dbrxr_spark; print(dbrxr_spark.LAST_JOB['convert_seconds'])", conn))
}
