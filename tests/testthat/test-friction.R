# The "Friction to remove" list of issue 22: one test per item done.
file_env <- environment()

# The run's shared Spark cluster, schema main.fr.
spark_friction_conn <- function(.env = parent.frame()) shared_spark_cluster("main.fr", .env = .env)

test_that("a connection in a data position says to pass it as `conn =`, before any request", {
  conn <- remote_test_conn(file_env)
  fit <- lm(mpg ~ wt, mtcars)
  before <- dbrxr:::local_stats(conn)$commands$executed
  calls <- list(
    quote(remote_score(conn, fit, mtcars)),
    quote(remote_model(conn, fit)),
    quote(dbx_read_table(conn, "main.fr.t")),
    quote(dbx_write_table(conn, mtcars, "main.fr.t")),
    quote(remote_score_table(conn, fit, "main.fr.t", "main.fr.out")),
    quote(remote_eval(conn, 1 + 1)),
    quote(remote_function(conn, sum)),
    quote(dbx_exec(conn, "1 + 1")),
    quote(remote_job(conn, quote(1))),
    quote(remote_install_packages(conn, "stats")))
  for (cl in calls) {
    e <- expect_error(eval(cl), class = "dbrxr_input_error")
    msg <- cli::ansi_strip(conditionMessage(e))
    expect_match(msg, "is a dbx_connection, not the data", fixed = TRUE, info = deparse(cl))
    expect_match(msg, "pass it as `conn = `", fixed = TRUE, info = deparse(cl))
    # Raised in the verb's own frame: the user's call, not a helper's.
    expect_identical(as.character(conditionCall(e)[[1]]), as.character(cl[[1]]))
  }
  expect_identical(dbrxr:::local_stats(conn)$commands$executed, before)
})

test_that("globals over the size threshold get the size warning, naming the largest", {
  conn <- remote_test_conn(file_env)
  withr::local_options(dbrxr.size_notice_bytes = 1e6)
  big_lookup <- runif(3e5)
  small <- 1:3
  w <- expect_warning(res <- remote_eval(big_lookup[small], conn), class = "dbrxr_size_warning")
  expect_identical(res, big_lookup[small])
  expect_match(conditionMessage(w), "`big_lookup` (2.3 MB)", fixed = TRUE)
  expect_true(w$size > 1e6)
  f <- function(i) big_lookup[i]
  w <- expect_warning(rf <- remote_function(f, conn), class = "dbrxr_size_warning")
  expect_match(conditionMessage(w), "`f` and the globals it uses", fixed = TRUE)
  expect_match(conditionMessage(w), "`big_lookup`", fixed = TRUE)
  expect_identical(rf(2:3), f(2:3))
  # Small globals: no warning.
  expect_no_warning(remote_eval(small + 1L, conn))
  skip_if_not_installed("future")
  oplan <- future::plan(dbrxr::databricks, conn = conn, workers = 1)
  withr::defer(future::plan(oplan))
  w <- expect_warning(fut <- future::future(sum(big_lookup)), class = "dbrxr_size_warning")
  expect_match(conditionMessage(w), "The future and the globals it uses", fixed = TRUE)
  expect_equal(future::value(fut), sum(big_lookup))
})

test_that("remote_score() takes the model's own name for newdata (newx, new_data)", {
  conn <- remote_test_conn(file_env)
  skip_if_not_installed("glmnet")
  set.seed(1)
  x <- matrix(rnorm(200), 50, 4, dimnames = list(NULL, paste0("x", 1:4)))
  y <- x[, 1] * 2 + rnorm(50)
  fit <- glmnet::glmnet(x, y)
  expect_identical(remote_score(fit, newx = x[1:5, ], s = 0.1, conn = conn),
                   predict(fit, newx = x[1:5, ], s = 0.1))
  # new_data (tidymodels' predict methods) reaches predict() as its second argument.
  predict.frictionmodel <- function(object, new_data, ...) rep(object$k, NROW(new_data))
  m <- structure(list(k = 3), class = "frictionmodel")
  expect_identical(remote_score(m, new_data = mtcars[1:4, ], conn = conn), rep(3, 4))
  e <- expect_error(remote_score(fit, conn = conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "`newdata` is missing", fixed = TRUE)
})

test_that("ranger and glmnet predictions become table columns without a postprocess", {
  conn <- spark_friction_conn()
  skip_if_not_installed("ranger")
  skip_if_not_installed("glmnet")
  dbx_write_table(mtcars, "main.fr.cars", mode = "overwrite", conn = conn)
  cars <- dbx_read_table("main.fr.cars", conn = conn)
  rf <- ranger::ranger(mpg ~ wt + hp, data = mtcars, num.trees = 20, seed = 1)
  remote_score_table(rf, "main.fr.cars", "main.fr.rf", keep = "wt", mode = "overwrite",
                     conn = conn)
  out <- dbx_read_table("main.fr.rf", conn = conn)
  expect_named(out, c("wt", ".pred"))
  expect_equal(out$.pred, predict(rf, cars)$predictions)
  # Probabilities: one column per class.
  d <- transform(mtcars, am = factor(am))
  pf <- ranger::ranger(am ~ wt + hp, data = d, num.trees = 20, probability = TRUE, seed = 1)
  remote_score_table(pf, "main.fr.cars", "main.fr.pf", mode = "overwrite", conn = conn)
  out <- dbx_read_table("main.fr.pf", conn = conn)
  expect_named(out, c(".pred_0", ".pred_1"))
  expect_equal(unname(as.matrix(out)), unname(predict(pf, cars)$predictions))
  # glmnet: the batch as the matrix of its variables, one s -> one column.
  x <- as.matrix(mtcars[, c("wt", "hp", "disp")])
  gf <- glmnet::glmnet(x, mtcars$mpg)
  remote_score_table(gf, "main.fr.cars", "main.fr.gl", s = 0.5, mode = "overwrite", conn = conn)
  out <- dbx_read_table("main.fr.gl", conn = conn)
  expect_named(out, ".pred")
  expect_equal(out$.pred, unname(predict(gf, as.matrix(cars[, c("wt", "hp", "disp")]), s = 0.5)[, 1]))
})

test_that("a missing schema's hint names the user's catalog.schema", {
  conn <- spark_friction_conn()
  e <- expect_error(dbx_write_table(mtcars, "main.nosuchschema_fr.cars", conn = conn),
                    class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "CREATE SCHEMA IF NOT EXISTS main.nosuchschema_fr", fixed = TRUE)
  expect_no_match(conditionMessage(e), "main.crm", fixed = TRUE)
  expect_identical(dbrxr:::schema_of("a.b.c"), "a.b")
  expect_identical(dbrxr:::schema_of("b.c"), "b")
  expect_null(dbrxr:::schema_of("c"))
})

test_that("remote_packages() filters to `packages` and prints a summary, then the differences", {
  conn <- remote_test_conn(file_env)
  local_test_packages("dbxC")
  loadNamespace("dbxC")
  pk <- remote_packages(conn, packages = c("stats", "dbxC", "nosuchpkgfr"))
  expect_s3_class(pk, "data.frame")
  expect_setequal(pk$package, c("stats", "dbxC", "nosuchpkgfr"))
  expect_equal(pk$status[pk$package == "stats"], "same")
  expect_equal(pk$status[pk$package == "dbxC"], "missing remote")
  out <- capture.output(print(pk))
  expect_match(out[1], "<dbx_packages> 3 packages: 1 same, 0 different, 0 only remote, 2 missing remote",
               fixed = TRUE)
  expect_true(any(grepl("dbxC", out)))
  expect_false(any(grepl("stats", out)))
  expect_error(remote_packages(conn, packages = 1), class = "dbrxr_input_error")
  all <- remote_packages(conn)
  expect_true(nrow(all) > nrow(pk))
})

test_that("one-, two- and three-part table names resolve as documented", {
  conn <- spark_friction_conn()
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS fr_two')", conn)
  df <- data.frame(x = 1:3)
  # Two parts: the current catalog (on the local cluster, hive_metastore).
  dbx_write_table(df, "fr_two.t", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("hive_metastore.fr_two.t", conn = conn), df)
  expect_error(dbx_read_table("main.fr_two.t", conn = conn), class = "dbrxr_table_not_found_error")
  # One part: the current schema (default).
  dbx_write_table(df, "fr_one_t", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("hive_metastore.default.fr_one_t", conn = conn), df)
  # Three parts, and the hint of a missing schema in each form.
  e <- expect_error(dbx_write_table(df, "nosuch_fr2.t", conn = conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "CREATE SCHEMA IF NOT EXISTS nosuch_fr2')", fixed = TRUE)
  expect_error(dbx_write_table(df, "a.b.c.d", conn = conn), class = "dbrxr_input_error")
})

test_that("condition headlines start with a capital letter (all snapshot files)", {
  files <- list.files(test_path("_snaps"), "\\.md$", full.names = TRUE)
  files <- files[!grepl("\\.new\\.md$", files)]
  expect_gt(length(files), 1)
  seen <- 0
  for (f in files) {
    lines <- readLines(f, warn = FALSE)
    at <- grep("^    (Error|Warning|Message|Condition) <[^>]+>$", lines)
    for (i in at) {
      cls <- sub(".*<([^>]+)>$", "\\1", lines[i])
      # Text relayed from the user's own code on the cluster is theirs.
      if (!startsWith(cls, "dbrxr_") || cls %in% c("dbrxr_remote_message", "dbrxr_remote_warning")) next
      head <- sub("^      ([ix!v] )?", "", lines[i + 1])
      seen <- seen + 1
      expect_false(grepl("^[a-z]", head), info = paste0(basename(f), ": ", head))
    }
  }
  expect_gt(seen, 30)
})

test_that("examples that need only a local cluster are @examplesIf and run with example()", {
  skip_if_no_local_cluster()
  db <- tools::Rd_db("dbrxr")
  # remote_library (R/remote-library.R) is being rewritten in parallel;
  # dbrxr-testing's example also shows a call that needs no cluster.
  later <- c("remote_library.Rd", "dbrxr-testing.Rd")
  topics <- character()
  for (nm in setdiff(names(db), later)) {
    out <- tempfile()
    tools::Rd2ex(db[[nm]], out)
    ex <- if (file.exists(out)) paste(readLines(out), collapse = "\n") else ""
    if (!grepl("local_cluster()", ex, fixed = TRUE)) next
    expect_false(grepl("## No test:", ex, fixed = TRUE), info = nm)
    expect_true(grepl("_example_ok()|interactive()", ex), info = nm)
    if (grepl("local_example_ok()", ex, fixed = TRUE)) topics <- c(topics, sub("\\.Rd$", "", nm))
  }
  expect_gte(length(topics), 10)
  for (topic in topics) {
    err <- tryCatch({
      suppressMessages(utils::capture.output(
        utils::example(topic, package = "dbrxr", character.only = TRUE, ask = FALSE, echo = FALSE)))
      NULL
    }, error = function(e) conditionMessage(e))
    expect_null(err, info = topic)
  }
  expect_null(dbrxr:::current_default())
})

test_that("dbx_write_table() shows progress for large frames only", {
  conn <- spark_friction_conn()
  withr::local_options(cli.dynamic = FALSE, cli.progress_show_after = 0)
  said <- character()
  keep <- function(m) {
    said <<- c(said, conditionMessage(m))
    invokeRestart("muffleMessage")
  }
  big <- data.frame(x = runif(2e6), y = runif(2e6))   # 32 MB
  withCallingHandlers(dbx_write_table(big, "main.fr.big", mode = "overwrite", conn = conn,
                                      progress = TRUE), message = keep)
  expect_true(any(grepl("Command Running|Uploading the request", said)), info = paste(said, collapse = " | "))
  said <- character()
  withCallingHandlers(dbx_write_table(mtcars, "main.fr.small", mode = "overwrite", conn = conn,
                                      progress = TRUE), message = keep)
  expect_false(any(grepl("Command Running|Uploading|Running the request", said)))
  expect_error(dbx_write_table(mtcars, "main.fr.small", progress = "yes", conn = conn),
               class = "dbrxr_input_error")
})
