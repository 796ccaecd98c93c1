# Model Serving latency: one registered R model (lm, 10 columns) queried
# through a local cluster's endpoint (remote_serve(): the workspace's
# /serving-endpoints/<name>/invocations, behind the token, relayed to MLflow's
# scoring server) against the same model version behind `mlflow models serve
# -m <version> --env-manager local` started by hand on a port. Both are
# queried by the same client (Python's http.client, one kept-alive
# connection, dataframe_split bodies), 1 and 1,000 rows; medians of
# alternating rounds. A last column times dbx_endpoint_query() from R (the
# R values back, identical() to predict()) for the same rows.

serve_client_py <- c(
  "import http.client, json, statistics, sys, time, urllib.parse",
  "url, token, body_path, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])",
  "u = urllib.parse.urlparse(url)",
  "body = open(body_path, 'rb').read()",
  "h = {'Content-Type': 'application/json'}",
  "if token: h['Authorization'] = 'Bearer ' + token",
  "c = http.client.HTTPConnection(u.hostname, u.port)",
  "def once():",
  "    t0 = time.perf_counter()",
  "    c.request('POST', u.path, body, h)",
  "    r = c.getresponse(); data = r.read()",
  "    assert r.status == 200, data[:300]",
  "    json.loads(data)['predictions']",
  "    return time.perf_counter() - t0",
  "for _ in range(3): once()",
  "print(statistics.median(once() for _ in range(n)))")

bench_serve <- function() {
  token <- paste0("dapi-bench-", paste(sample(c(letters, 0:9), 24, TRUE), collapse = ""))
  conn <- local_cluster(token = token)
  on.exit(dbx_disconnect(conn), add = TRUE)
  py <- conn$local_info$python
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.bench')", conn)
  cols <- paste0("V", 1:10)
  set.seed(42)
  train <- as.data.frame(matrix(runif(2e4), ncol = 10))
  names(train) <- cols
  fit <- stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = train)
  v <- remote_log_model(fit, "main.bench.serve", input_example = head(train[cols[-1]]),
                        alias = "champion", conn = conn)
  ep <- remote_serve("models:/main.bench.serve@champion", "bench", conn = conn)

  tmp <- tempfile("bench-serve-")
  dir.create(tmp)
  # The same version's files behind `mlflow models serve`, by hand (its log
  # to a file: an unread pipe fills and stalls it).
  dir <- file.path(conn$local_info$state_dir, "uc-models", "main", "bench", "serve", v$version)
  port <- 18000L + sample.int(2000L, 1L)
  bin <- dirname(py)
  hand <- processx::process$new(py, c("-m", "mlflow", "models", "serve", "-m", dir, "--env-manager", "local",
                                      "--host", "127.0.0.1", "--port", port),
                                env = c("current", PATH = paste(bin, Sys.getenv("PATH"), sep = ":"),
                                        R_LIBS = file.path(conn$local_info$state_dir, "r-site-library")),
                                stdout = file.path(tmp, "serve.log"), stderr = "2>&1", cleanup_tree = TRUE)
  on.exit(hand$kill_tree(), add = TRUE)
  hand_url <- sprintf("http://127.0.0.1:%d/invocations", port)
  writeLines(serve_client_py, file.path(tmp, "client.py"))
  query <- function(url, token, body, n) {
    out <- processx::run(py, c(file.path(tmp, "client.py"), url, token, body, n), timeout = 600)
    as.numeric(trimws(out$stdout))
  }
  for (i in 1:240) {
    up <- tryCatch(query(hand_url, "", write_body(train[1, cols[-1]], tmp, "ping"), 1), error = function(e) NA)
    if (!is.na(up)) break
    Sys.sleep(0.5)
  }
  rows <- c(1, 1000)
  out <- lapply(rows, function(n) {
    nd <- train[rep_len(seq_len(nrow(train)), n), cols[-1]]
    body <- write_body(nd, tmp, paste0("b", n))
    reps <- if (n == 1) 200 else 30
    times <- replicate(3, c(endpoint = query(ep$url, token, body, reps),
                            by_hand = query(hand_url, "", body, reps)))
    med <- apply(times, 1, stats::median)
    r_times <- vapply(1:reps, function(i) system.time(dbx_endpoint_query("bench", nd, conn = conn))[["elapsed"]], 0)
    p <- dbx_endpoint_query("bench", nd, conn = conn)
    data.frame(rows = format(n, big.mark = ","), endpoint_ms = round(med[["endpoint"]] * 1000, 2),
               mlflow_models_serve_ms = round(med[["by_hand"]] * 1000, 2),
               ratio = round(med[["endpoint"]] / med[["by_hand"]], 2),
               dbx_endpoint_query_ms = round(stats::median(r_times) * 1000, 2),
               identical_predict = identical(p, unname(predict(fit, nd))))
  })
  dbx_endpoint_delete("bench", conn = conn)
  list(endpoint_query_latency = do.call(rbind, out))
}

# A dataframe_split body, doubles in full precision (17 significant digits).
write_body <- function(nd, dir, name) {
  path <- file.path(dir, paste0(name, ".json"))
  rows <- apply(as.matrix(nd), 1, function(r) paste0("[", paste(sprintf("%.17g", r), collapse = ", "), "]"))
  writeLines(sprintf('{"dataframe_split": {"columns": [%s], "data": [%s]}}',
                     paste0('"', names(nd), '"', collapse = ", "), paste(rows, collapse = ", ")), path)
  path
}
