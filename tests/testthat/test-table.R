# Tables on the local cluster's Spark: write/read round trips, models scored
# over a table identical() to local predict() (100,000 rows in
# test-slow-table.R), classed errors. The run's shared Spark cluster serves the
# file (schema main.tt).

spark_conn <- function(.env = parent.frame()) shared_spark_cluster("main.tt", .env = .env)
spark_token <- shared_spark_token

test_that("dbx_write_table() -> dbx_read_table() round-trips every supported type", {
  conn <- spark_conn()
  df <- data.frame(
    i = c(1L, NA, -3L, .Machine$integer.max),
    d = c(1.5, NA, NaN, -Inf),
    s = c("a", NA, "\u00e9t\u00e9", ""),
    b = c(TRUE, NA, FALSE, TRUE),
    dt = as.Date(c("2024-02-29", NA, "1969-12-31", "1900-01-01")),
    ts = as.POSIXct(c("2024-01-01 10:00:00.25", NA, "1960-05-01 00:00:01", "2038-01-19 03:14:08"),
                    tz = "UTC"),
    stringsAsFactors = FALSE)
  dbx_write_table(df, "main.tt.types", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.types", conn = conn), df)
  # Documented exception: factors come back as character.
  fac <- data.frame(g = factor(c("x", NA, "y"), levels = c("y", "x", "z")))
  dbx_write_table(fac, "main.tt.fac", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.fac", conn = conn)$g, c("x", NA, "y"))
  # An empty table keeps its columns and types.
  dbx_write_table(df[0, ], "main.tt.empty", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.empty", conn = conn), df[0, ])
  # limit, append and a query as source.
  dbx_write_table(df, "main.tt.types", mode = "append", conn = conn)
  expect_equal(nrow(dbx_read_table("main.tt.types", conn = conn)), 8L)
  expect_equal(nrow(dbx_read_table("main.tt.types", limit = 3, conn = conn)), 3L)
  q <- dbx_read_table(dbx_sql("SELECT count(*) AS n FROM main.tt.types WHERE b"), conn = conn)
  # bigint -> integer64 with bit64 (its methods registered by dbx_read_table()), else double.
  expect_equal(as.numeric(q$n), 4)
})

test_that("tables survive a context restart", {
  conn <- spark_conn()
  dbx_write_table(data.frame(k = 1:3), "main.tt.keepme", mode = "overwrite", conn = conn)
  local_restart(conn)
  expect_identical(dbx_read_table("main.tt.keepme", conn = conn), data.frame(k = 1:3))
})

test_that("a table another context overwrote or appended to reads as it is now", {
  conn <- spark_conn()
  other <- dbx_connect(host = conn$local_info$url, token = spark_token,
                       cluster_id = conn$local_info$cluster_id)
  withr::defer(dbx_disconnect(other))
  dbx_write_table(data.frame(a = 1:3), "main.tt.shared", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.shared", conn = other), data.frame(a = 1:3))
  # Overwritten in the first context: the other one had listed the old files.
  dbx_write_table(data.frame(a = 11:15), "main.tt.shared", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.shared", conn = other), data.frame(a = 11:15))
  dbx_write_table(data.frame(a = 16L), "main.tt.shared", mode = "append", conn = conn)
  got <- dbx_read_table("main.tt.shared", conn = other)
  expect_identical(sort(got$a), 11:16)
  # And the other way round, through SQL.
  dbx_write_table(data.frame(a = 21:22), "main.tt.shared", mode = "overwrite", conn = other)
  expect_identical(dbx_exec("SELECT sum(a) AS s FROM main.tt.shared", conn, language = "sql")$s, 43)
  # Dropped in one context: in the other it does not exist (not a missing path),
  # and written again it is there again.
  dropped <- dbx_exec("DROP TABLE main.tt.shared", conn, language = "sql")
  expect_identical(dim(dropped), c(0L, 0L))
  expect_error(dbx_read_table("main.tt.shared", conn = other), class = "dbrxr_table_not_found_error")
  dbx_write_table(data.frame(a = 31L), "main.tt.shared", conn = conn)
  expect_identical(dbx_read_table("main.tt.shared", conn = other), data.frame(a = 31L))
})

test_that("a Spark failure is its innermost cause in one line; the JVM's frames stay in the traceback", {
  conn <- spark_conn()
  query <- "SELECT raise_error('boom on spark') AS x"
  e <- expect_error(dbx_read_table(dbx_sql(query), conn = conn), class = "dbrxr_sql_error")
  expect_identical(e$statement, query)
  msg <- conditionMessage(e)
  expect_match(msg, "RuntimeException: boom on spark", fixed = TRUE)
  expect_lt(nchar(msg), 300)
  expect_false(grepl("\tat |at org\\.apache", msg))
  expect_match(paste(e$remote_traceback, collapse = "\n"), "org.apache.spark", fixed = TRUE)
})

test_that("a query Spark refuses is a dbrxr_sql_error with Spark's fields, in every table verb", {
  conn <- spark_conn()
  dbx_write_table(data.frame(a = 1:3), "main.tt.sqlerr", mode = "overwrite", conn = conn)
  bad <- dbx_sql("SELECT nope FROM main.tt.sqlerr")
  e <- expect_error(dbx_read_table(bad, conn = conn), class = "dbrxr_sql_error")
  expect_match(e$error_class, "UNRESOLVED_COLUMN")
  expect_identical(e$sqlstate, "42703")
  expect_match(conditionMessage(e), "nope")
  expect_error(remote_score_table(function(d) d$a, bad, "main.tt.sqlerr_out", conn = conn),
               class = "dbrxr_sql_error")
  e <- expect_error(dbx_read_table(dbx_sql("SELEC 1"), conn = conn), class = "dbrxr_sql_error")
  expect_match(e$error_class, "PARSE_SYNTAX_ERROR")
})

test_that("seven model types score a 25,000-row table identical() to local predict()", {
  # 2 partitions of 12,500 rows, each cut into 2 Arrow batches; 100,000 rows
  # in 4 partitions: test-slow-table.R.
  score_seven_models(spark_conn(), n = 25000, partitions = 2)
})

test_that("a missing table and an existing output are classed errors before any job", {
  conn <- spark_conn()
  fit <- lm(y ~ x2, data = make_rows(100, 3))
  expect_error(remote_score_table(fit, "main.tt.nope", "main.tt.out1", conn = conn),
               class = "dbrxr_table_not_found_error")
  dbx_write_table(make_rows(100, 3), "main.tt.small", mode = "overwrite", conn = conn)
  remote_score_table(fit, "main.tt.small", "main.tt.small_out", mode = "overwrite", conn = conn)
  expect_error(remote_score_table(fit, "main.tt.small", "main.tt.small_out", conn = conn),
               class = "dbrxr_table_exists_error")
  expect_error(dbx_read_table("main.tt.nope", conn = conn), class = "dbrxr_table_not_found_error")
  expect_error(dbx_write_table(make_rows(5, 1), "main.noschema.t", conn = conn),
               class = "dbrxr_input_error")
  expect_error(remote_score_table(fit, "not a name", "main.tt.x", conn = conn),
               class = "dbrxr_input_error")
  expect_error(remote_score_table(fit, "main.tt.small", "main.tt.x", keep = "nope", conn = conn),
               class = "dbrxr_input_error")
  expect_error(remote_score_table(fit, "main.tt.small", "main.tt.x", mode = "overwrite",
                                  postprocess = function(p) list(p), conn = conn),
               "postprocess", class = "dbrxr_input_error")
  # A package the cluster lacks: a classed error naming it, before the Spark job.
  err <- expect_error(remote_score_table(function(d) dbrxrNoSuchPkg::score(d), "main.tt.small",
                                         "main.tt.x", mode = "overwrite", conn = conn),
                      class = "dbrxr_missing_package_error")
  expect_identical(err$package, "dbrxrNoSuchPkg")
})

test_that("an R error in a batch is a dbrxr_remote_error with its rows; overwrite keeps the old table", {
  conn <- spark_conn()
  data <- make_rows(30000, 4)
  dbx_write_table(data, "main.tt.err", mode = "overwrite", conn = conn)
  # A formula environment without the test's data (no dbrxr_size_warning).
  fit <- lm(stats::as.formula("y ~ x2", env = globalenv()), data = data)
  remote_score_table(fit, "main.tt.err", "main.tt.err_out", keep = "id", mode = "overwrite",
                     conn = conn)
  before <- dbx_read_table("main.tt.err_out", conn = conn)
  # The probe (first 100 rows, on the driver) passes; the executors' batches fail.
  err <- expect_error(
    remote_score_table(fit, "main.tt.err", "main.tt.err_out", keep = "id", mode = "overwrite",
                       postprocess = function(p) if (length(p) > 500) stop("boom in a batch") else p,
                       conn = conn),
    class = "dbrxr_remote_error")
  expect_identical(err$remote_message, "boom in a batch")
  expect_match(err$rows, "^[0-9]+-[0-9]+$")
  expect_false(is.null(err$partition))
  expect_identical(dbx_read_table("main.tt.err_out", conn = conn), before)
  # An append whose job fails adds no rows (the writer commits at job end).
  expect_error(
    remote_score_table(fit, "main.tt.err", "main.tt.err_out", keep = "id", mode = "append",
                       postprocess = function(p) if (length(p) > 500) stop("boom in a batch") else p,
                       conn = conn),
    class = "dbrxr_remote_error")
  expect_identical(dbx_read_table("main.tt.err_out", conn = conn), before)

  # Rows are counted in the whole source, in the order dbx_read_table()
  # returns it, not within the failing batch's Spark partition: the range
  # holds the one row that fails.
  src <- dbx_sql("SELECT /*+ REPARTITION(3) */ * FROM main.tt.err")
  order <- dbx_read_table(src, conn = conn)$id
  bad_id <- order[25000]
  picky <- function(nd) {
    if (any(nd$id == bad_id)) stop("boom at one id")
    stats::predict(fit, nd)
  }
  err <- expect_error(remote_score_table(picky, src, "main.tt.err_rows", mode = "overwrite",
                                         conn = conn),
                      class = "dbrxr_remote_error")
  expect_identical(err$remote_message, "boom at one id")
  rows <- as.integer(strsplit(err$rows, "-", fixed = TRUE)[[1]])
  expect_true(rows[1] <= 25000 && 25000 <= rows[2])
  expect_true(rows[1] > 1)  # not the failing partition's own row numbers
  expect_match(err$partition_rows, "^[0-9]+-[0-9]+$")
  expect_match(conditionMessage(err), "as dbx_read_table() returns it", fixed = TRUE)
})

test_that("R warnings raised in batches reach the caller once per text, with their batch count", {
  conn <- spark_conn()
  data <- make_rows(30000, 6)
  dbx_write_table(data, "main.tt.warn", mode = "overwrite", conn = conn)
  fit <- lm(stats::as.formula("y ~ x2", env = globalenv()), data = data)
  noisy <- function(p) { warning("careful: ", length(p) > 0); p }
  src <- dbx_sql("SELECT /*+ REPARTITION(3) */ * FROM main.tt.warn")
  warns <- list()
  res <- withCallingHandlers(
    remote_score_table(fit, src, "main.tt.warn_out", keep = "id", mode = "overwrite",
                       postprocess = noisy, conn = conn),
    dbrxr_remote_warning = function(w) {
      warns[[length(warns) + 1L]] <<- w
      invokeRestart("muffleWarning")
    })
  expect_equal(res$rows, 30000)
  expect_length(warns, 1L)
  expect_identical(warns[[1]]$remote_message, "careful: TRUE (in postprocess())")
  # One warning per batch: at least one batch in each of the 3 partitions.
  expect_gte(warns[[1]]$batches, 3L)
  expect_match(conditionMessage(warns[[1]]), "^\\(on the cluster, in [0-9]+ batches\\) careful: TRUE")
  # A clean run warns nothing.
  expect_no_warning(remote_score_table(fit, src, "main.tt.warn_out", keep = "id",
                                       mode = "overwrite", conn = conn))
})

test_that("timeout cancels the Spark job group; the previous output stays intact", {
  conn <- spark_conn()
  fit <- lm(y ~ x2, data = make_rows(100, 5))
  before <- dbx_read_table("main.tt.err_out", conn = conn)
  slow <- function(p) { if (length(p) > 500) Sys.sleep(60); p }
  t0 <- Sys.time()
  expect_error(remote_score_table(fit, "main.tt.err", "main.tt.err_out", keep = "id",
                                  mode = "overwrite", postprocess = slow, timeout = 8, conn = conn),
               class = "dbrxr_timeout_error")
  expect_lt(as.numeric(Sys.time() - t0, units = "secs"), 30)
  expect_identical(dbx_read_table("main.tt.err_out", conn = conn), before)
  # Nothing of the cancelled job is still running: no active Spark job.
  active <- dbx_exec("len(spark.sparkContext.statusTracker().getActiveJobsIds())", conn)
  expect_match(active, "0$")
})

test_that("Ctrl-C (an interrupt from outside) cancels the Spark job within 2 s; overwrite keeps the old table", {
  skip_if_not_installed("callr")
  conn <- spark_conn()
  before <- dbx_read_table("main.tt.err_out", conn = conn)
  started <- tempfile("dbrxr-started-")
  child <- callr::r_bg(function(url, token, cluster_id, started) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    fit <- lm(y ~ x2, data = data.frame(x2 = c(1, 2, 3, 5), y = c(2, 3, 5, 4)))
    slow <- function(p) {
      if (length(p) > 500) { file.create(started); Sys.sleep(120) }
      p
    }
    said <- character()
    r <- withCallingHandlers(
      tryCatch(remote_score_table(fit, "main.tt.err", "main.tt.err_out", mode = "overwrite",
                                  keep = "id", postprocess = slow, conn = conn),
               interrupt = function(e) "interrupted"),
      dbrxr_cancelled_message = function(m) {
        said <<- c(said, conditionMessage(m))
        invokeRestart("muffleMessage")
      })
    t0 <- Sys.time()
    repeat {
      active <- dbx_exec("len(spark.sparkContext.statusTracker().getActiveJobsIds())", conn)
      if (grepl("0$", active) || Sys.time() - t0 > 30) break
      Sys.sleep(0.05)
    }
    list(r = r, said = said, active = active, done_at = Sys.time())
  }, args = list(conn$local_info$url, spark_token, conn$local_info$cluster_id, started),
  env = c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)))
  on.exit(child$kill(), add = TRUE)
  deadline <- Sys.time() + 240
  while (!file.exists(started) && child$is_alive() && Sys.time() < deadline) Sys.sleep(0.1)
  expect_true(file.exists(started))
  Sys.sleep(0.5)
  t0 <- Sys.time()
  child$interrupt()
  child$wait(60000)
  res <- child$get_result()
  expect_identical(res$r, "interrupted")
  # The user is told the command was cancelled and the table left as it was.
  expect_match(res$said[1], "the remote command was cancelled on the cluster", fixed = TRUE)
  expect_match(res$said[2], "Table main.tt.err_out is unchanged", fixed = TRUE)
  expect_match(res$active, "0$")
  # From the interrupt to the child seeing no active Spark job (its check included).
  expect_lt(as.numeric(res$done_at - t0, units = "secs"), 2)
  expect_identical(dbx_read_table("main.tt.err_out", conn = conn), before)
})

test_that("without PySpark the table verbs raise dbrxr_unsupported_error", {
  skip_if_no_rpy2()
  py <- "/usr/bin/python3"
  ok <- identical(suppressWarnings(system2(py, c("-c", shQuote("import rpy2, pyspark")),
                                           stdout = FALSE, stderr = FALSE)), 0L)
  skip_if(ok || !file.exists(py), "/usr/bin/python3 has PySpark")
  conn <- local_cluster(python = py)
  withr::defer(dbx_disconnect(conn))
  err <- expect_error(dbx_read_table("main.tt.data", conn = conn), class = "dbrxr_unsupported_error")
  expect_match(conditionMessage(err), "pip install pyspark")
})

test_that("warm table verbs cross into Rust at most 3 times (score) and 2 times (read)", {
  conn <- spark_conn()
  fit <- lm(y ~ x2, data = make_rows(200, 5))
  dbx_write_table(make_rows(500, 6), "main.tt.calls", mode = "overwrite", conn = conn)
  remote_score_table(fit, "main.tt.calls", "main.tt.calls_out", mode = "overwrite", conn = conn)
  dbx_read_table("main.tt.calls", limit = 5, conn = conn)
  calls <- function(expr) {
    before <- dbrxr:::rust_debug_calls()
    force(expr)
    after <- dbrxr:::rust_debug_calls()
    (after$calls - before$calls) - (after$waits - before$waits)
  }
  expect_lte(calls(remote_score_table(fit, "main.tt.calls", "main.tt.calls_out",
                                      mode = "overwrite", conn = conn)), 3)
  expect_lte(calls(dbx_read_table("main.tt.calls", limit = 5, conn = conn)), 2)
})

test_that("R builds no Python source and reads no markers: the marker is defined once", {
  root <- test_path("..", "..")
  skip_if_not(dir.exists(file.path(root, "R")), "the package sources are not here")
  strings <- unlist(lapply(list.files(file.path(root, "R"), "\\.R$", full.names = TRUE), function(f) {
    pd <- utils::getParseData(parse(f, keep.source = TRUE, encoding = "UTF-8"))
    pd$text[pd$token == "STR_CONST"]
  }))
  python <- grepl("(^\"|\\\\n)(import|from) [a-z]|sys\\.modules|b64decode|def [a-z_]+\\(|\\bprint\\(", strings, useBytes = TRUE)
  # Probes of a local Python (system2(python, "-c", ...)), never sent to a cluster.
  # dbx_sitrep()'s probes: fixed text, no user values in it (R/sitrep.R).
  local_probes <- c("\"import pyspark\"", "\"import rpy2.rinterface\"", "\"import mlflow, pyspark\"",
                    "\"print(spark.version)\"",
                    "\"import os; print(os.path.isdir('/dbfs'), os.path.isdir('/Volumes'))\"",
                    "\"print('\\\\n'.join((lambda m: [m.__version__, str(m.get_registry_uri())])\"")
  expect_identical(setdiff(strings[python], local_probes), character())
  expect_false(any(grepl("DBRXR1", strings, fixed = TRUE, useBytes = TRUE)))
  where <- function(dir) {
    files <- list.files(file.path(root, dir), recursive = TRUE, full.names = TRUE)
    files[vapply(files, function(f) {
      any(grepl("DBRXR1", readLines(f, warn = FALSE, encoding = "UTF-8"), fixed = TRUE, useBytes = TRUE))
    }, NA)]
  }
  expect_identical(basename(c(where("R"), where("inst"), where("src/rust/src"))), "protocol.rs")
})

test_that("a factor level the model never saw is the model's own error naming column, level and rows", {
  conn <- spark_conn()
  set.seed(11)
  train <- data.frame(g = factor(sample(c("a", "b", "c"), 300, TRUE)), x = rnorm(300))
  train$y <- as.numeric(train$g) + train$x + rnorm(300)
  train$cls <- factor(ifelse(train$y > 2, "yes", "no"))
  new <- data.frame(g = c("a", "b", "zz", "c"), x = c(0.1, 0.2, 0.3, 0.4), stringsAsFactors = FALSE)
  dbx_write_table(new, "main.tt.unseen", mode = "overwrite", conn = conn)
  dbx_write_table(data.frame(old = 1), "main.tt.unseen_out", mode = "overwrite", conn = conn)
  local_err <- function(fit, ...) {
    e <- tryCatch(predict(fit, new, ...), error = function(e) e)
    expect_s3_class(e, "error")
    conditionMessage(e)
  }
  check <- function(fit, ...) {
    err <- expect_error(remote_score_table(fit, "main.tt.unseen", "main.tt.unseen_out",
                                           mode = "overwrite", conn = conn, ...),
                        class = "dbrxr_remote_error")
    expect_identical(err$column, "g")
    expect_identical(err$levels, "zz")
    expect_match(paste(conditionMessage(err), collapse = "\n"), "never saw: zz")
    expect_identical(dbx_read_table("main.tt.unseen_out", conn = conn), data.frame(old = 1))
    err
  }
  fit_lm <- lm(y ~ g + x, data = train)
  err <- check(fit_lm)
  expect_identical(err$remote_message, local_err(fit_lm))          # "factor g has new level zz"
  fit_glm <- glm(cls ~ g + x, data = train, family = binomial())
  err <- check(fit_glm, type = "response")
  expect_identical(err$remote_message, local_err(fit_glm, type = "response"))
  skip_if_not_installed("rpart")
  fit_rp <- rpart::rpart(y ~ g + x, data = train)
  err <- check(fit_rp)
  expect_identical(err$remote_message, local_err(fit_rp))
  # ranger records its factor levels only when it respects unordered
  # factors ("order", "partition"); its own predict() then maps a new level
  # to a value silently: on tables, dbrxr makes it the error lm gives. (In
  # ranger's default "ignore" mode it records none: the table's sorted
  # distinct values are the levels, as predict() on the whole table does.)
  skip_if_not_installed("ranger")
  fit_rg <- ranger::ranger(y ~ g + x, data = train, num.trees = 20, num.threads = 1, seed = 1,
                           respect.unordered.factors = "order")
  err <- check(fit_rg, postprocess = function(p) p$predictions)
  expect_identical(err$remote_message, "factor g has new level zz")
})

test_that("deep recursion in a table batch is an R error; the context goes on", {
  conn <- spark_conn()
  deep <- function(newdata) {
    options(expressions = 5e5)
    f <- function(n) if (n == 0) 0 else 1 + f(n - 1)
    rep(f(1e5), nrow(newdata))
  }
  dbx_write_table(data.frame(x = 1:3), "main.tt.deep", mode = "overwrite", conn = conn)
  err <- expect_error(remote_score_table(deep, "main.tt.deep", "main.tt.deep_out",
                                         mode = "overwrite", conn = conn),
                      class = "dbrxr_remote_error")
  expect_match(conditionMessage(err), "C stack usage")
  expect_identical(remote_eval(1 + 1, conn), 2)
})

test_that("remote_score_table(progress = TRUE) in a fresh R process shows a bar over Spark stages and succeeds", {
  skip_if_not_installed("callr")
  conn <- spark_conn()
  dbx_write_table(make_rows(20000, 8), "main.tt.progress", mode = "overwrite", conn = conn)
  log <- withr::local_tempfile()
  out <- callr::r(function(url, token, cluster_id) {
    library(dbrxr)
    options(cli.progress_show_after = 0)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    # cli draws a bar that has lived 2 s; the job's stages may take less.
    options(cli.progress_show_after = 0)
    fit <- lm(y ~ x2 + f, data = data.frame(x2 = runif(50), f = c("a", "b", "c", "0rare", "a"),
                                             y = rnorm(50)))
    # A sorted source: Spark samples it (one stage), then sorts and scores
    # (more stages), so the bar reaches the end of a stage and goes on. Slow
    # batches make every stage last long enough to be drawn: the sort makes
    # 2 partitions of one batch each, scored at once on 2 cores, and the
    # cluster reports every 0.5 s (0.3 s a batch was sometimes not seen).
    src <- dbx_sql("SELECT * FROM main.tt.progress ORDER BY id DESC")
    slow <- function(p) { Sys.sleep(1.5); p }
    for (i in 1:2) {
      res <- remote_score_table(fit, src, "main.tt.progress_out", mode = "overwrite",
                                postprocess = slow, progress = TRUE, conn = conn)
    }
    res$rows
  }, args = list(conn$local_info$url, spark_token, conn$local_info$cluster_id),
  env = c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep)),
  stdout = log, stderr = "2>&1")
  expect_identical(out, 20000)
  expect_match(paste(readLines(log), collapse = "\n"), "Spark tasks")
})

test_that("an append that does not fit the table is refused, naming each column; the table stays readable", {
  conn <- spark_conn()
  dbx_write_table(data.frame(id = 1:3, x = c(.1, .2, .3)), "main.tt.ap", mode = "overwrite", conn = conn)
  err <- expect_error(
    dbx_write_table(data.frame(id = "a", x = "b", extra = 1), "main.tt.ap", mode = "append", conn = conn),
    class = "dbrxr_schema_error")
  expect_s3_class(err, "dbrxr_input_error")
  msg <- paste(conditionMessage(err), collapse = "\n")
  expect_match(msg, "`id` is string here but int in the table")
  expect_match(msg, "`x` is string here but double in the table")
  expect_match(msg, "`extra` is not a column of the table")
  expect_identical(dbx_read_table("main.tt.ap", conn = conn), data.frame(id = 1:3, x = c(.1, .2, .3)))
  # Compatible types are widened as Delta's append does: integer into double.
  dbx_write_table(data.frame(id = 4L, x = 5L), "main.tt.ap", mode = "append", conn = conn)
  got <- dbx_read_table("main.tt.ap", conn = conn)
  expect_identical(got[order(got$id), "x"], c(.1, .2, .3, 5))
  # remote_score_table(mode = "append") into a table of other columns: refused before the job.
  fit <- lm(x ~ id, data = got)
  expect_error(remote_score_table(fit, "main.tt.ap", "main.tt.ap", mode = "append", conn = conn),
               class = "dbrxr_schema_error")
  expect_identical(nrow(dbx_read_table("main.tt.ap", conn = conn)), 4L)
})

test_that("any column name works: dots, spaces, backticks, non-ASCII, a leading dot; case clashes are refused", {
  conn <- spark_conn()
  set.seed(3)
  df <- data.frame(a = rnorm(12), b = rnorm(12), c = rep(c("x", "y"), 6), d = rnorm(12),
                   e = rnorm(12), stringsAsFactors = FALSE)
  names(df) <- c("Sepal.Length", "has space", "back`tick", "caf\u00e9", ".lead")
  dbx_write_table(df, "main.tt.names", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.names", conn = conn), df)
  fit <- lm(Sepal.Length ~ ., data = df)   # every other column, whatever its name
  remote_score_table(fit, "main.tt.names", "main.tt.names_out", keep = names(df),
                     mode = "overwrite", conn = conn)
  out <- dbx_read_table("main.tt.names_out", conn = conn)
  expect_identical(out$.pred, unname(predict(fit, df)))
  # A table that already has a .pred column, scored again (into itself).
  remote_score_table(fit, "main.tt.names_out", "main.tt.names_out", keep = names(df),
                     prediction = ".pred2", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("main.tt.names_out", conn = conn)$.pred2, unname(predict(fit, df)))
  # Names that differ only in case, or repeat: refused before anything is sent.
  commands <- function() dbrxr:::local_stats(conn)$commands$executed
  n0 <- commands()
  err <- expect_error(dbx_write_table(data.frame(a = 1, A = 2), "main.tt.case", conn = conn),
                      class = "dbrxr_input_error")
  expect_match(paste(conditionMessage(err), collapse = "\n"), "`a` and `A`")
  dup <- data.frame(a = 1, b = 2)
  names(dup) <- c("a", "a")
  expect_error(dbx_write_table(dup, "main.tt.case", conn = conn), class = "dbrxr_input_error")
  expect_equal(commands(), n0)
})

test_that("every R column type is written exactly or refused before any upload", {
  skip_if_not_installed("bit64")
  conn <- spark_conn()
  big <- bit64::as.integer64(c("3", "4", NA, "9007199254740993", "-9223372036854775807"))
  dbx_write_table(data.frame(i = big), "main.tt.i64", mode = "overwrite", conn = conn)
  back <- dbx_read_table("main.tt.i64", conn = conn)
  expect_s3_class(back$i, "integer64")
  expect_identical(back$i, big)
  commands <- function() dbrxr:::local_stats(conn)$commands$executed
  n0 <- commands()
  bad <- list(
    difftime = as.difftime(c(1, 2), units = "mins"),
    posixlt = as.POSIXlt(c("2024-01-01", "2024-01-02"), tz = "UTC"),
    complex = c(1i, 2i),
    raw = as.raw(1:2))
  for (nm in names(bad)) {
    df <- data.frame(id = 1:2)
    df$col <- bad[[nm]]
    err <- expect_error(dbx_write_table(df, "main.tt.bad", mode = "overwrite", conn = conn),
                        class = "dbrxr_input_error")
    expect_identical(err$column, "col")
  }
  m <- data.frame(id = 1:2)
  m$m <- matrix(1:4, 2)
  expect_error(dbx_write_table(m, "main.tt.bad", mode = "overwrite", conn = conn), "matrix")
  l <- data.frame(id = 1:2)
  l$l <- list(1, "a")
  expect_error(dbx_write_table(l, "main.tt.bad", mode = "overwrite", conn = conn), "list column")
  err <- expect_error(dbx_write_table(data.frame(d = as.difftime(1, units = "hours")), "main.tt.bad",
                                      conn = conn), class = "dbrxr_input_error")
  expect_match(paste(conditionMessage(err), collapse = "\n"), "hours")
  expect_equal(commands(), n0)
})
