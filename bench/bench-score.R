# Scoring benchmark on a local cluster: local predict() against remote_score()
# warm (model cached on the cluster) and cold (model shipped first), bytes
# moved per warm call, and the prototype's approach (newdata pasted into R
# source, the result as r_repr() text parsed back, 1 s polling) for small data.

bench_score <- function() {
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  set.seed(42)
  rows <- c(1, 1e3, 1e5, 1e6)
  data <- as.data.frame(matrix(runif(1e7), ncol = 10))
  train <- data[1:2000, ]
  models <- list(
    lm = stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = train),
    ranger = ranger::ranger(stats::as.formula("V1 ~ .", env = globalenv()), data = train,
                            num.trees = 50, seed = 1, num.threads = 2))
  dbrxr:::exec_command(conn, "pass")
  pass <- stats::median(vapply(1:20, function(i) {
    system.time(dbrxr:::exec_command(conn, "pass"))[["elapsed"]]
  }, numeric(1)))

  # The prototype: model already in the remote R global environment.
  prototype <- function(name, nd) {
    code <- paste0("from rpy2 import robjects\n",
                   "res = robjects.r('''predict(.proto_", name, ", ",
                   paste(deparse(nd, control = c("keepNA", "keepInteger", "niceNames", "showAttributes", "digits17")), collapse = "\n"), ")''')\n",
                   "print(res.r_repr())")
    out <- dbrxr:::exec_command(conn, code, poll_fixed = 1)$data
    eval(parse(text = out))
  }
  time_med <- function(f, n) {
    stats::median(vapply(seq_len(n), function(i) system.time(f())[["elapsed"]], numeric(1)))
  }
  moved <- function() {
    s <- dbrxr:::local_stats(conn)
    s$bytes_in + s$bytes_out
  }
  out <- list()
  for (name in names(models)) {
    fit <- models[[name]]
    remote_eval(assign(paste0(".proto_", name), fit, envir = globalenv()), conn)
    for (n in rows) {
      nd <- data[seq_len(n), -1, drop = FALSE]
      reps <- if (n <= 1e3) 15L else if (n <= 1e5) 5L else 2L
      local <- time_med(function() stats::predict(fit, nd), reps)
      # Cold: a copy with a new content hash, so the model is shipped again.
      cold <- time_med(function() {
        attr(fit, "bench_nonce") <- runif(1)
        remote_score(fit, nd, conn = conn, progress = FALSE)
      }, min(reps, 3L))
      remote_score(fit, nd, conn = conn, progress = FALSE)
      warm <- time_med(function() remote_score(fit, nd, conn = conn, progress = FALSE), reps)
      b0 <- moved()
      res <- remote_score(fit, nd, conn = conn, progress = FALSE)
      bytes <- moved() - b0
      stopifnot(identical(res, stats::predict(fit, nd)))
      proto <- NA_real_
      if (n <= 1e3) {
        proto <- time_med(function() prototype(name, nd), 2L)
      }
      out[[length(out) + 1L]] <- data.frame(
        model = name, rows = format(n, big.mark = ",", scientific = FALSE),
        `local predict()` = fmt_s(local), `remote warm` = fmt_s(warm),
        `remote cold` = fmt_s(cold), `warm / local` = sprintf("%.1fx", warm / local),
        `bytes moved (warm)` = fmt_mb(bytes),
        `prototype (1 s poll)` = if (is.na(proto)) "" else fmt_s(proto),
        `prototype / warm` = if (is.na(proto)) "" else sprintf("%.0fx", proto / warm),
        check.names = FALSE)
    }
  }
  list(scoring = do.call(rbind, out),
       round_trip = data.frame(`dbx_exec("pass")` = fmt_s(pass),
                               `3x pass (1-row warm target)` = fmt_s(3 * pass),
                               check.names = FALSE))
}

fmt_s <- function(x) if (x < 1) sprintf("%.1f ms", 1000 * x) else sprintf("%.2f s", x)
fmt_mb <- function(b) if (b < 1e6) sprintf("%.1f KB", b / 1e3) else sprintf("%.1f MB", b / 1e6)
