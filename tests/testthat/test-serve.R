# Model Serving on the local cluster: remote_serve() puts a registered R
# model behind an endpoint (MLflow's scoring server), dbx_endpoint_query()
# answers R's values, moving the alias and serving again swaps versions with
# no failed request, deleting ends the server process, and queries need the
# token. One endpoint serves lm, then glm, then ranger (one server start each).

test_that("bad input is refused before any network call, with classes", {
  expect_error(remote_serve("models:/main.s.m", "churn", conn = NULL), class = "dbrxr_input_error")
  expect_error(remote_serve("models:/main.s.m/0", "churn", conn = NULL), class = "dbrxr_input_error")
  expect_error(remote_serve("models:/main.s.m@champion", "no spaces", conn = NULL), class = "dbrxr_input_error")
  expect_error(remote_serve("models:/main.s.m@champion", "churn", "Small", conn = NULL),
               class = "dbrxr_input_error")
  expect_error(remote_serve("models:/main.s.m@champion", "churn", workload_size = "Huge", conn = NULL),
               class = "dbrxr_input_error")
  expect_error(dbx_endpoint_query("churn", 1:3, conn = NULL), class = "dbrxr_input_error")
  expect_error(dbx_endpoint_query("churn", data.frame(x = I(list(1, 2))), conn = NULL),
               class = "dbrxr_input_error")
  expect_error(dbx_endpoint_delete(strrep("x", 64), conn = NULL), class = "dbrxr_input_error")
})

# A background process that queries the endpoint in a loop (its own HTTP
# client, the workspace's token) until `stop` exists; it writes what it saw.
hammer_script <- c(
  "import json, os, sys, urllib.request, urllib.error",
  "url, token, stop, out = sys.argv[1:5]",
  "body = json.dumps({'dataframe_split': {'columns': ['wt', 'hp'], 'data': [[2.62, 110.0]]}}).encode()",
  "ok = fail = 0; seen = []; errors = []",
  "while not os.path.exists(stop):",
  "    req = urllib.request.Request(url, data=body, headers={'Authorization': 'Bearer ' + token,",
  "                                                      'Content-Type': 'application/json'})",
  "    try:",
  "        with urllib.request.urlopen(req, timeout=120) as r:",
  "            p = json.load(r)['predictions'][0]",
  "        ok += 1",
  "        if not seen or seen[-1] != p: seen.append(p)",
  "    except Exception as e:",
  "        fail += 1; errors.append(repr(e)[:300])",
  "json.dump({'ok': ok, 'fail': fail, 'seen': seen, 'errors': errors[:5]}, open(out, 'w'))")

# The HTTP status of a query sent with `auth` as its Authorization header.
query_status <- function(url, auth) {
  code <- c("import sys, urllib.request, urllib.error",
            "h = {'Content-Type': 'application/json'}",
            "if sys.argv[2]: h['Authorization'] = sys.argv[2]",
            "req = urllib.request.Request(sys.argv[1], data=b'{\"dataframe_split\": {\"columns\": [\"wt\", \"hp\"], \"data\": [[2.62, 110.0]]}}', headers=h)",
            "try:\n    print(urllib.request.urlopen(req, timeout=60).status)",
            "except urllib.error.HTTPError as e:\n    print(e.code)")
  res <- processx::run(mlflow_python(), c("-c", paste(code, collapse = "\n"), url, auth),
                       error_on_status = FALSE, timeout = 120)
  as.integer(trimws(res$stdout))
}

test_that("an endpoint serves lm, glm and ranger versions with R's values, swaps without a failed query, needs the token and ends its process on delete", {
  conn <- mlflow_conn()
  model <- "main.ml.serve_m"
  x <- mtcars[c("wt", "hp")]
  fit_lm <- lm(mpg ~ wt + hp, data = mtcars)
  v1 <- remote_log_model(fit_lm, model, input_example = head(x), alias = "champion", conn = conn)
  ep <- remote_serve(sprintf("models:/%s@champion", model), "churn", conn = conn)
  withr::defer(try(dbx_endpoint_delete("churn", conn = conn), silent = TRUE))
  expect_s3_class(ep, "dbx_endpoint")
  expect_identical(c(ep$state, ep$config_update, ep$model), c("READY", "NOT_UPDATING", model))
  expect_identical(ep$version, v1$version)
  expect_output(print(ep), "churn")
  expect_identical(dbx_endpoint_query("churn", x, conn = conn), unname(predict(fit_lm, x)))
  eps <- dbx_endpoints(conn)
  row <- eps[eps$name == "churn", ]
  expect_identical(list(row$state, row$model, row$version), list("READY", model, v1$version))

  # Queries need the workspace's token, like every route.
  url <- ep$url
  expect_identical(query_status(url, ""), 401L)
  expect_identical(query_status(url, "Bearer not-the-token"), 403L)
  expect_identical(query_status(url, paste("Bearer", shared_spark_token)), 200L)

  # A challenger (glm, same inputs) becomes champion; serving again swaps the
  # endpoint to it while a loop of queries runs: none fails.
  fit_glm <- glm(am ~ wt + hp, data = mtcars, family = binomial)
  v2 <- remote_log_model(fit_glm, model, type = "response", input_example = head(x), conn = conn)
  dir <- withr::local_tempdir()
  writeLines(hammer_script, file.path(dir, "hammer.py"))
  stop_file <- file.path(dir, "stop")
  hammer <- processx::process$new(mlflow_python(), c(file.path(dir, "hammer.py"), url, shared_spark_token,
                                                     stop_file, file.path(dir, "out.json")),
                                  stderr = file.path(dir, "hammer.err"))
  withr::defer(hammer$kill())
  old_pid <- as.integer(sub("^.*\\(pid ([0-9]+)\\).*$", "\\1", ep$message))
  run_job(unwrap(rust_registry_alias(conn$handle, model, "champion", as.character(v2$version))))
  ep2 <- remote_serve(sprintf("models:/%s@champion", model), "churn", conn = conn)
  Sys.sleep(1)
  writeLines("", stop_file)
  hammer$wait(60000)
  seen <- jsonlite::fromJSON(file.path(dir, "out.json"))
  expect_identical(ep2$version, v2$version)
  expect_identical(seen$fail, 0L, info = paste(seen$errors, collapse = "\n"))
  expect_gt(seen$ok, 5L)
  one <- x[x$wt == 2.62 & x$hp == 110, ][1, ]
  expect_equal(seen$seen, unname(c(predict(fit_lm, one), predict(fit_glm, one, type = "response"))))
  expect_identical(dbx_endpoint_query("churn", x, conn = conn), unname(predict(fit_glm, x, type = "response")))
  # The old server went with the swap.
  expect_true(process_gone(old_pid))

  # ranger with a postprocess, served by version number.
  set.seed(1)
  fit_rg <- ranger::ranger(Species ~ ., iris, probability = TRUE, num.trees = 50)
  pp <- function(p) p$predictions[, "virginica"]
  v3 <- remote_log_model(fit_rg, model, postprocess = pp, input_example = head(iris[1:4]), conn = conn)
  ep3 <- remote_serve(sprintf("models:/%s/%d", model, v3$version), "churn", conn = conn)
  expect_identical(dbx_endpoint_query(ep3, iris[1:4]), pp(predict(fit_rg, iris[1:4])))

  # Deleting ends the server process; the endpoint is gone.
  pid <- as.integer(sub("^.*\\(pid ([0-9]+)\\).*$", "\\1", ep3$message))
  expect_true(file.exists(file.path("/proc", pid)))
  dbx_endpoint_delete(ep3)
  expect_true(process_gone(pid))
  expect_false("churn" %in% dbx_endpoints(conn)$name)
  expect_error(dbx_endpoint_query("churn", x, conn = conn), class = "dbrxr_endpoint_not_found_error")
  expect_error(dbx_endpoint_delete("churn", conn = conn), class = "dbrxr_endpoint_not_found_error")
  expect_error(remote_serve(sprintf("models:/%s@nobody", model), "churn", conn = conn),
               class = "dbrxr_model_alias_not_found_error")
})

test_that("dbx_sitrep()'s serving check: ok on the local cluster, a warning that says what is not verified on a workspace", {
  conn <- mlflow_conn()
  row <- check_serving(conn, NULL, Sys.time() + 60, new.env())
  expect_identical(row$status, "ok")
  expect_match(row$detail, "MLflow's scoring server", fixed = TRUE)
  # The same server reached as a workspace (not a local connection).
  ws <- dbx_connect(host = conn$local_info$url, token = shared_spark_token,
                    cluster_id = conn$local_info$cluster_id)
  withr::defer(dbx_disconnect(ws))
  row <- check_serving(ws, NULL, Sys.time() + 60, new.env())
  expect_identical(row$status, "warn")
  expect_match(row$detail, "not verified", fixed = TRUE)
  expect_match(row$detail, "r-base", fixed = TRUE)
  expect_match(row$fix, "remote_serve()", fixed = TRUE)
})

test_that("a version the scoring server cannot load fails the update with a classed error saying why", {
  conn <- mlflow_conn()
  # Registered files that are no MLflow model (the registry is not asked:
  # a version number is served as it is).
  dir <- file.path(conn$local_info$state_dir, "uc-models", "main", "ml", "serve_broken", "1")
  dir.create(dir, recursive = TRUE)
  withr::defer(unlink(dirname(dir), recursive = TRUE))
  writeLines("not: [a model", file.path(dir, "MLmodel"))
  ep <- remote_serve("models:/main.ml.serve_broken/1", "broken", conn = conn, wait = FALSE)
  withr::defer(try(dbx_endpoint_delete("broken", conn = conn), silent = TRUE))
  expect_identical(c(ep$state, ep$config_update), c("NOT_READY", "IN_PROGRESS"))
  err <- expect_error(remote_serve("models:/main.ml.serve_broken/1", "broken", conn = conn),
                      class = "dbrxr_serving_error")
  expect_match(conditionMessage(err), "exited", fixed = TRUE)
  expect_error(remote_serve("models:/main.ml.serve_broken/2", "broken", conn = conn),
               class = "dbrxr_model_version_not_found_error")
})
