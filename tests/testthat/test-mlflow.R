# R models in MLflow on the local cluster's real MLflow server: logged and
# registered from the context, scored through models:/ URIs identical() to
# local predict(), loaded by the official Python client in a fresh process
# (compared exactly), served by `mlflow models serve`, and the classed errors.
# The run's shared Spark cluster (its MLflow server, schema main.ml) serves the
# file; 100,000 rows scored by URI: test-slow-mlflow.R.

# Bytes the local cluster's routes matching `pattern` took in (or sent out).
route_bytes <- function(s, pattern, dir = "bytes_in") {
  r <- s$routes[grepl(pattern, names(s$routes))]
  sum(vapply(r, function(x) as.numeric(x[[dir]]), numeric(1)))
}

# Logged once, used by several tests: name -> list(version, fit, newdata, expected).
logged <- new.env()

iris_rows <- function() {
  iris[c(1:10, 51:60, 101:110), c("Sepal.Length", "Sepal.Width", "Petal.Length", "Petal.Width")]
}

# mlflow.pyfunc.load_model(uri).predict(csv) for each of `uris` (with its
# `newdata`, a list) in one fresh Python process of the venv, with the
# local cluster as its workspace (workspace_mlflow_env()): the predictions as R doubles
# (numbers travel as raw float64, so the comparison is exact) or strings, one
# per URI.
python_predict <- function(conn, uris, newdata) {
  dir <- withr::local_tempdir()
  csvs <- file.path(dir, paste0("in-", seq_along(uris), ".csv"))
  outs <- file.path(dir, paste0("out-", seq_along(uris)))
  for (i in seq_along(uris)) utils::write.csv(newdata[[i]], csvs[i], row.names = FALSE)
  script <- file.path(dir, "predict.py")
  writeLines(c(
    "import sys, numpy as np, pandas as pd, mlflow",
    "args = sys.argv[1:]",
    "for uri, csv, out in zip(args[0::3], args[1::3], args[2::3]):",
    "    df = pd.read_csv(csv)",
    "    m = mlflow.pyfunc.load_model(uri)",
    "    # MLflow refuses int64 where the signature says double: cast as its users do",
    "    doubles = [c.name for c in m.metadata.get_input_schema().inputs if str(c.type) in ('double', 'DataType.double')]",
    "    df = df.astype({c: 'float64' for c in doubles if c in df.columns})",
    "    p = m.predict(df)",
    "    a = np.asarray(p)",
    "    if a.dtype == object:",
    "        open(out, 'w').write(''.join(str(x) + '\\n' for x in a))",
    "    else:",
    "        a.astype('float64').tofile(out)"), script)
  env <- c(workspace_mlflow_env(conn), R_LIBS = paste(.libPaths(), collapse = ":"))
  args <- as.vector(rbind(uris, csvs, outs))
  res <- processx::run(mlflow_python(), c(script, args), env = c("current", env),
                       error_on_status = FALSE, timeout = 600)
  if (res$status != 0) stop("Python failed: ", substr(res$stderr, max(1, nchar(res$stderr) - 3000), nchar(res$stderr)))
  lapply(seq_along(uris), function(i) {
    raw <- readBin(outs[i], "raw", file.size(outs[i]))
    n <- nrow(newdata[[i]])
    if (length(raw) == 8L * n) readBin(raw, "double", n) else readLines(outs[i])
  })
}

free_port <- function() {
  as.integer(system2(mlflow_python(), c("-c", shQuote(paste(
    "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"))),
    stdout = TRUE))
}

test_that("bad names and URIs are input errors before any network call", {
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt, data = mtcars)
  before <- local_stats(conn)$commands$executed
  e <- expect_error(remote_log_model(fit, "crm.churn", input_example = mtcars[1:3, "wt", drop = FALSE],
                                     conn = conn), class = "dbrxr_input_error")
  expect_match(conditionMessage(e), "main.crm.churn", fixed = TRUE)
  expect_error(remote_log_model(fit, "main.ml.x", conn = conn), class = "dbrxr_input_error")
  expect_error(remote_score("models:/main.ml.x@", mtcars, conn = conn), class = "dbrxr_input_error")
  expect_error(remote_score("models:/main.ml.x/v1", mtcars, conn = conn), class = "dbrxr_input_error")
  expect_equal(local_stats(conn)$commands$executed, before)
})

test_that("lm, glm, ranger, randomForest and a function are logged, registered and scored by URI identical() to predict()", {
  conn <- mlflow_conn()
  fit_lm <- lm(mpg ~ wt + hp + factor(cyl), data = mtcars)
  v <- remote_log_model(fit_lm, "main.ml.mpg", input_example = head(mtcars[c("wt", "hp", "cyl")]),
                        alias = "champion", tags = list(team = "r"), conn = conn)
  expect_s3_class(v, "dbx_model_version")
  expect_equal(v$alias, "champion")
  expect_equal(unname(v$inputs), c("double", "double", "double"))
  expect_equal(v$outputs, "double")
  expect_output(print(v), "main.ml.mpg version [0-9]+ @champion")
  expect_identical(remote_score("models:/main.ml.mpg@champion", mtcars, conn = conn),
                   predict(fit_lm, mtcars))
  expect_identical(remote_score(sprintf("models:/main.ml.mpg/%d", v$version), mtcars, conn = conn),
                   predict(fit_lm, mtcars))
  m <- remote_model("models:/main.ml.mpg@champion", conn = conn)
  expect_identical(predict(m, mtcars[1:7, ]), predict(fit_lm, mtcars[1:7, ]))
  logged$mpg <- list(version = v$version, fit = fit_lm, newdata = mtcars,
                     expected = unname(predict(fit_lm, mtcars)))

  fit_glm <- glm(am ~ wt + hp, data = mtcars, family = binomial)
  v <- remote_log_model(fit_glm, "main.ml.am", type = "response",
                        input_example = head(mtcars[c("wt", "hp")]), alias = "champion", conn = conn)
  expect_identical(remote_score("models:/main.ml.am@champion", mtcars, conn = conn),
                   predict(fit_glm, mtcars, type = "response"))
  logged$am <- list(newdata = mtcars, expected = unname(predict(fit_glm, mtcars, type = "response")))

  set.seed(1)
  fit_rg <- ranger::ranger(Species ~ ., iris, probability = TRUE, num.trees = 50)
  pp <- function(p) p$predictions[, "virginica"]
  v <- remote_log_model(fit_rg, "main.ml.species_prob", postprocess = pp,
                        input_example = head(iris[1:4]), alias = "champion", conn = conn)
  expect_identical(remote_score("models:/main.ml.species_prob@champion", iris, conn = conn),
                   pp(predict(fit_rg, iris)))
  logged$species_prob <- list(newdata = iris_rows(), expected = unname(pp(predict(fit_rg, iris_rows()))))

  set.seed(2)
  fit_rf <- randomForest::randomForest(Species ~ ., iris, ntree = 51)
  v <- remote_log_model(fit_rf, "main.ml.species", type = "class", input_example = head(iris[1:4]),
                        alias = "champion", conn = conn)
  expect_equal(v$outputs, "string")
  expect_identical(remote_score("models:/main.ml.species@champion", iris, conn = conn),
                   predict(fit_rf, iris, type = "class"))
  logged$species <- list(newdata = iris_rows(),
                         expected = as.character(predict(fit_rf, iris_rows(), type = "class")))

  k <- 2.5
  f <- function(newdata) k * newdata$wt + log(newdata$hp)
  v <- remote_log_model(f, "main.ml.fun", prototype = mtcars[0, c("wt", "hp")],
                        input_example = head(mtcars), alias = "champion", conn = conn)
  expect_identical(remote_score("models:/main.ml.fun@champion", mtcars, conn = conn), f(mtcars))
  logged$fun <- list(newdata = mtcars[c("wt", "hp")], expected = f(mtcars))

  models <- dbx_models(conn)
  expect_true(all(c("main.ml.mpg", "main.ml.am", "main.ml.species_prob", "main.ml.species",
                    "main.ml.fun") %in% models$name))
  expect_true(all(grepl("champion", models$aliases[models$name == "main.ml.fun"])))
})

test_that("mlflow.pyfunc.load_model() in a fresh Python process returns exactly the same values", {
  conn <- mlflow_conn()
  if (is.null(logged$fun)) skip("the models were not logged")
  nms <- c("mpg", "am", "species_prob", "species", "fun")
  got <- python_predict(conn, sprintf("models:/main.ml.%s@champion", nms),
                        lapply(nms, function(nm) logged[[nm]]$newdata))
  for (i in seq_along(nms)) {
    expect_identical(got[[i]], unname(logged[[nms[i]]]$expected), label = nms[i])
  }
})

test_that("a second log of the same model ships no model bytes, uploads no artifacts and registers the next version", {
  conn <- mlflow_conn()
  set.seed(3)
  big <- data.frame(x = rnorm(20000), y = rnorm(20000))
  fit <- ranger::ranger(y ~ x, big, num.trees = 30)
  size <- length(serialize(fit, NULL))
  expect_gt(size, 1e6)
  pp <- function(p) p$predictions
  v1 <- remote_log_model(fit, "main.ml.big", postprocess = pp, input_example = head(big["x"]), conn = conn)
  s0 <- local_stats(conn)
  v2 <- remote_log_model(fit, "main.ml.big", postprocess = pp, input_example = head(big["x"]), conn = conn)
  s1 <- local_stats(conn)
  expect_equal(v2$version, v1$version + 1L)
  expect_true(v2$reused)
  client_bytes <- route_bytes(s1, "commands/execute|dbfs|fs/files") - route_bytes(s0, "commands/execute|dbfs|fs/files")
  expect_lt(client_bytes, size / 10)
  # The run's artifacts (Files API under /WorkspaceInternal/Mlflow/Artifacts) are
  # reused; only the new version's own copy goes up (presigned URLs).
  runs <- "fs/files/WorkspaceInternal"
  expect_gt(route_bytes(s0, runs), 0)
  expect_equal(route_bytes(s1, runs), route_bytes(s0, runs))
  # For the next test: not the fit (a test's formula environment would then reach it).
  logged$big <- list(size = size, version = v2$version, x = big$x[1:2000],
                     expected = unname(predict(fit, big[1:2000, "x", drop = FALSE])$predictions))
})

test_that("a table job or a future with a registered model leaves the model on the cluster (no model bytes to R and back)", {
  conn <- mlflow_conn()
  if (is.null(logged$big)) skip("the big model was not logged")
  big <- logged$big
  df <- data.frame(id = 1:2000, x = big$x)
  dbx_write_table(df, "main.ml.big_in", mode = "overwrite", conn = conn)
  routes <- "commands|dbfs|fs/files"
  uri <- sprintf("models:/main.ml.big/%d", big$version)
  h <- remote_model(uri, conn = conn)
  # The copy the cluster staged when it loaded the model, which executors read.
  staged <- file.path(conn$local_info$state_dir, "fs", "dbfs", sub("^dbfs:/+", "", h$path))
  for (model in list(uri, h)) {
    # Gone (cleaned up): staged again, from the registry or the context's cache.
    expect_true(file.remove(staged))
    s0 <- local_stats(conn)
    remote_score_table(model, "main.ml.big_in", "main.ml.big_out", keep = "id", mode = "overwrite",
                       conn = conn)
    s1 <- local_stats(conn)
    expect_lt(route_bytes(s1, routes, "bytes_out") - route_bytes(s0, routes, "bytes_out"), big$size / 10)
    expect_lt(route_bytes(s1, routes, "bytes_in") - route_bytes(s0, routes, "bytes_in"), big$size / 10)
    out <- dbx_read_table("main.ml.big_out", conn = conn)
    out <- out[order(out$id), ]
    expect_identical(unname(out$.pred), big$expected)
  }
  # A future's worker context loads the handle's model from the cluster's
  # staged copy, not from here.
  skip_if_not_installed("future")
  old <- future::plan(databricks, conn = conn, workers = 1)
  withr::defer(future::plan(old))
  newdata <- data.frame(x = big$x)
  expect_identical(future::value(future::future(predict(h, newdata[1:10, , drop = FALSE]), seed = TRUE)), big$expected[1:10])
  s0 <- local_stats(conn)
  p <- future::value(future::future(predict(h, newdata), seed = TRUE))
  s1 <- local_stats(conn)
  expect_identical(unname(p), big$expected)
  expect_lt(route_bytes(s1, routes, "bytes_out") - route_bytes(s0, routes, "bytes_out"), big$size / 10)
  expect_lt(route_bytes(s1, routes, "bytes_in") - route_bytes(s0, routes, "bytes_in"), big$size / 10)
})

test_that("registry errors are classed: missing schema, failing predict(), unknown alias or version", {
  conn <- mlflow_conn()
  fit <- lm(mpg ~ wt, data = mtcars)
  e <- expect_error(remote_log_model(fit, "main.nosuchschema.m", input_example = mtcars[1:3, "wt", drop = FALSE],
                                     conn = conn), class = "dbrxr_not_found_error")
  expect_match(conditionMessage(e), "main.nosuchschema")
  bad <- function(newdata) stop("no scores for you")
  e <- expect_error(remote_log_model(bad, "main.ml.bad", input_example = mtcars[1:3, "wt", drop = FALSE],
                                     conn = conn), class = "dbrxr_remote_error")
  expect_match(conditionMessage(e), "no scores for you")
  expect_error(remote_score("models:/main.ml.mpg@nosuchalias", mtcars, conn = conn),
               class = "dbrxr_not_found_error")
  expect_error(remote_score("models:/main.ml.mpg/999", mtcars, conn = conn),
               class = "dbrxr_not_found_error")
  expect_error(remote_score("models:/main.ml.nosuchmodel/1", mtcars, conn = conn),
               class = "dbrxr_not_found_error")
})

test_that("a cluster whose Python has no MLflow gives dbrxr_unsupported_error naming the fix", {
  skip_if_no_rpy2()
  py <- "/usr/bin/python3"
  has <- identical(suppressWarnings(system2(py, c("-c", shQuote("import rpy2, mlflow")),
                                            stdout = FALSE, stderr = FALSE)), 0L)
  rpy2 <- identical(suppressWarnings(system2(py, c("-c", shQuote("import rpy2")),
                                             stdout = FALSE, stderr = FALSE)), 0L)
  if (has || !rpy2) skip("needs a Python with rpy2 and without MLflow")
  conn <- local_test_cluster(python = py)
  e <- expect_error(dbx_models(conn), class = "dbrxr_unsupported_error")
  expect_match(conditionMessage(e), "pip install mlflow", fixed = TRUE)
})

test_that("remote_score_table() with a models:/ URI over 5,000 rows is identical() to predict()", {
  conn <- mlflow_conn()
  if (is.null(logged$mpg)) skip("the models were not logged")
  # 100,000 rows: test-slow-mlflow.R.
  score_cars_by_uri(conn, "models:/main.ml.mpg@champion", logged$mpg$fit, n = 5000)
})

test_that("`mlflow models serve --env-manager local` answers /invocations with the same values", {
  conn <- mlflow_conn()
  if (is.null(logged$mpg)) skip("the models were not logged")
  port <- free_port()
  env <- c(workspace_mlflow_env(conn), R_LIBS = paste(.libPaths(), collapse = ":"),
           PATH = paste(dirname(mlflow_python()), Sys.getenv("PATH"), sep = ":"))  # uvicorn
  mlflow_bin <- file.path(dirname(mlflow_python()), "mlflow")
  srv <- processx::process$new(mlflow_bin, c("models", "serve", "-m", "models:/main.ml.mpg@champion",
                                             "--env-manager", "local", "-h", "127.0.0.1",
                                             "-p", port),
                               env = c("current", env), stdout = "|", stderr = "2>&1")
  withr::defer(srv$kill_tree())
  url <- sprintf("http://127.0.0.1:%d", port)
  deadline <- Sys.time() + 300
  ready <- FALSE
  while (!ready && Sys.time() < deadline && srv$is_alive()) {
    ready <- tryCatch({
      con <- url(paste0(url, "/ping"))
      tryCatch(readLines(con, warn = FALSE), finally = close(con))
      TRUE
    }, error = function(e) FALSE, warning = function(w) FALSE)
    if (!ready) Sys.sleep(1)
  }
  if (!ready) fail(paste("the scoring server did not start:", paste(srv$read_output_lines(), collapse = "\n")))
  nd <- mtcars[1:8, c("wt", "hp", "cyl")]
  body <- jsonlite::toJSON(list(dataframe_split = list(columns = names(nd), data = unname(as.matrix(nd)))),
                           auto_unbox = TRUE, digits = NA)
  res <- processx::run("curl", c("-s", "-X", "POST", "-H", "Content-Type: application/json",
                                 "--data", body, paste0(url, "/invocations")))
  got <- jsonlite::fromJSON(res$stdout)$predictions
  expect_identical(as.numeric(got), unname(predict(logged$mpg$fit, nd)))
})
