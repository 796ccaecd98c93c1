# The exactly-once runs of test-request-path.R and test-retry.R (short) and
# test-slow-request-path.R (long): dbx_exec() and remote_score() under injected
# faults, and remote_eval() from two clients while contexts are evicted.

# `n` dbx_exec() calls under 30% 429 and 10% 503: all answered, each command
# executed once.
expect_commands_once_under_429_503 <- function(n) {
  # A cluster of its own: faults are injected into all of its routes.
  conn <- local_test_cluster()
  local_faults(conn, status_429_rate = 0.3, status_503_rate = 0.1, retry_after_s = 0, seed = 7)
  values <- vapply(seq_len(n), function(i) dbx_exec(sprintf("print(%d * 2)", i), conn), "")
  expect_identical(values, as.character(seq_len(n) * 2))
  local_faults(conn)
  s <- local_stats(conn)
  expect_identical(s$commands$executed, as.numeric(n))
  expect_gt(s$faults_injected, n / 4)
}

# A model whose predict() counts its runs in the remote session, so tests can
# see how often user code ran there.
counting_model <- function() {
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  structure(list(fit = fit), class = "dbrxr_counting_model")
}
# Its environment is a package's (stats), as remote_score() wants a predict
# method from a package.
counting_predict <- function(object, newdata, ...) {
  n <- get0(".dbrxr_test_runs", globalenv(), ifnotfound = 0) + 1
  assign(".dbrxr_test_runs", n, globalenv())
  stats::predict(object$fit, newdata)
}
environment(counting_predict) <- asNamespace("stats")

# `n` remote_score() calls of random data under 30% 429 + 10% 503 + 5%
# dropped connections: every value identical to local predict(), and the
# model's predict() ran exactly `n` times on the cluster.
score_under_faults <- function(n, seed = 11) {
  # A cluster of its own: faults are injected into all of its routes.
  conn <- local_test_cluster(.env = parent.frame())
  model <- counting_model()
  # remote_score() checks for a method here before shipping the model.
  registerS3method("predict", "dbrxr_counting_model", counting_predict)
  remote_eval(registerS3method("predict", "dbrxr_counting_model", pred, envir = globalenv()),
              conn, envir = list2env(list(pred = counting_predict)))
  remote_eval(assign(".dbrxr_test_runs", 0, globalenv()), conn)
  local_faults(conn, status_429_rate = 0.3, status_503_rate = 0.1, drop_rate = 0.05,
               retry_after_s = 0, seed = seed)
  # A call that hangs fails (saying where) instead of stalling the suite.
  withr::local_options(dbrxr.timeout = 120)
  set.seed(seed)
  ok <- 0L
  for (i in seq_len(n)) {
    rows <- sample(nrow(mtcars), sample(1:32, 1), replace = TRUE)
    nd <- mtcars[rows, ]
    nd$wt <- nd$wt * runif(length(rows), 0.5, 1.5)
    got <- remote_score(model, nd, conn = conn, progress = FALSE)
    if (identical(got, predict(model$fit, nd))) ok <- ok + 1L
  }
  stats <- local_stats(conn)
  local_faults(conn)
  runs <- remote_eval(get(".dbrxr_test_runs", globalenv()), conn)
  list(ok = ok, runs = runs, stats = stats)
}

expect_scored_once_under_faults <- function(n) {
  n <- as.integer(n)
  res <- score_under_faults(n)
  expect_identical(res$ok, n)
  expect_identical(as.integer(res$runs), n)
  expect_gt(res$stats$faults_injected, n / 2)
}

# `n` remote_eval() calls from each of two R processes while the contexts of
# their cluster are evicted every 0.05 s: every call answered, each ran once
# (counted inside the remote R).
expect_evictions_answered_once <- function(n) {
  n <- as.integer(n)
  skip_if_not_installed("callr")
  # A cluster of its own: its contexts are evicted all the time.
  conn <- local_test_cluster(token = "evict-test-token-0123456789", .env = environment())
  runs <- withr::local_tempfile()
  file.create(runs)
  client <- function(who, n, url, token, cluster_id, runs) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    options(dbrxr.timeout = 120)
    out <- list(ok = 0L, may_have_run = 0L, failed = character())
    for (i in seq_len(n)) {
      tag <- sprintf("%s-%d", who, i)
      # One string, one write: the two clients' lines never interleave.
      got <- tryCatch(remote_eval({ cat(paste0(tag, "\n"), file = runs, append = TRUE); tag }, conn),
                      error = function(e) e)
      if (identical(got, tag)) {
        out$ok <- out$ok + 1L
      } else if (inherits(got, "dbrxr_may_have_run_error")) {
        out$may_have_run <- out$may_have_run + 1L
      } else {
        out$failed <- c(out$failed, conditionMessage(got))
      }
    }
    out
  }
  env <- c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  args <- function(who) list(who, n, conn$local_info$url, "evict-test-token-0123456789",
                             conn$local_info$cluster_id, runs)
  a <- callr::r_bg(client, args = args("a"), env = env)
  b <- callr::r_bg(client, args = args("b"), env = env)
  on.exit({ a$kill(); b$kill() }, add = TRUE)
  evictions <- 0L
  deadline <- Sys.time() + 600
  while ((a$is_alive() || b$is_alive()) && Sys.time() < deadline) {
    evictions <- evictions + length(dbrxr:::local_evict(conn))
    # Often: a warm call takes ~3 ms, and a context is idle only between calls.
    Sys.sleep(0.05)
  }
  res <- list(a$get_result(), b$get_result())
  lines <- readLines(runs)
  expect_gt(evictions, 0)
  expect_identical(c(res[[1]]$failed, res[[2]]$failed), character())
  # Idle contexts are evicted, so no request is lost while it runs: every
  # call is answered (none "may have run").
  expect_identical(c(res[[1]]$ok, res[[2]]$ok), c(n, n))
  # Counted inside the remote R: every call ran, and none twice.
  expect_false(any(duplicated(lines)))
  expect_setequal(lines, c(sprintf("a-%d", seq_len(n)), sprintf("b-%d", seq_len(n))))
}
