# Every verb once per size on a local cluster, in a loop: the figures that
# tools/bench-against.sh compares between this tree and a baseline build, in
# alternating fresh R processes on the same machine. Written against the verbs'
# public signatures (and exec_command()), which both builds share. As a
# `make bench` part it prints this build's table; run as a script
# (`Rscript bench/bench-verbs.R`, as bench-against.sh does) it prints one line
# per case: `case<TAB>seconds per call`.

bench_verbs <- function() {
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  set.seed(42)
  data <- as.data.frame(matrix(runif(1e7), ncol = 10))
  fit <- stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = data[1:2000, ])
  per_call <- function(f, n) {
    f()  # warm: the model or table is in place, the poller has learned
    system.time(for (i in seq_len(n)) f())[["elapsed"]] / n
  }
  out <- c(
    `dbx_exec("pass")` = per_call(function() dbrxr:::exec_command(conn, "pass"), 100),
    `remote_eval(1 + 1)` = per_call(function() remote_eval(1 + 1, conn = conn), 100),
    `remote_score() 1 row` = per_call(function() {
      remote_score(fit, data[1, -1, drop = FALSE], conn = conn, progress = FALSE)
    }, 100),
    `remote_score() 1,000 rows` = per_call(function() {
      remote_score(fit, data[1:1000, -1], conn = conn, progress = FALSE)
    }, 50),
    `remote_score() 100,000 rows` = per_call(function() {
      remote_score(fit, data[1:1e5, -1], conn = conn, progress = FALSE)
    }, 10),
    `remote_score() 1,000,000 rows` = per_call(function() {
      remote_score(fit, data[, -1], conn = conn, progress = FALSE)
    }, 3))
  if (spark_available()) {
    dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.verbs')", conn)
    small <- data[1:1e5, ]
    dbx_write_table(small, "main.verbs.t", mode = "overwrite", conn = conn)
    out <- c(out,
      `dbx_write_table() 100,000 x 10` = per_call(function() {
        dbx_write_table(small, "main.verbs.t", mode = "overwrite", conn = conn)
      }, 5),
      `dbx_read_table() 100,000 x 10` = per_call(function() {
        dbx_read_table("main.verbs.t", conn = conn)
      }, 5),
      `remote_score_table() 100,000 rows` = per_call(function() {
        remote_score_table(fit, "main.verbs.t", "main.verbs.out", mode = "overwrite",
                           conn = conn, progress = FALSE)
      }, 5))
  }
  list(verbs = data.frame(verb = names(out), `per call` = vapply(out, fmt_per_call, ""),
                          seconds = signif(unname(out), 6), check.names = FALSE))
}

fmt_per_call <- function(s) if (s < 1) sprintf("%.2f ms", 1000 * s) else sprintf("%.2f s", s)

spark_available <- function() {
  ok <- tryCatch(system2(Sys.getenv("DBRXR_PYTHON", "python3"), c("-c", shQuote("import pyspark")),
                         stdout = FALSE, stderr = FALSE), error = function(e) 1L)
  identical(as.integer(ok), 0L)
}

if (sys.nframe() == 0L) {
  suppressPackageStartupMessages(library(dbrxr))
  v <- bench_verbs()$verbs
  cat(paste0(v$verb, "\t", as.character(v$seconds), "\n"), sep = "")
}
