# A one-off job run of a trivial function on the local cluster against
# remote_eval() of the same function: the overhead of the job path (staging the
# request and runner, runs/submit, a new Python + R process for the run, the
# answer through staging). Median of 5 warm runs each; the goal is < 1 s (issue 37).

bench_jobs <- function(reps = 5L) {
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  f <- function(x) x + 1
  secs <- function(expr) {
    t <- proc.time()[["elapsed"]]
    force(expr)
    proc.time()[["elapsed"]] - t
  }
  stopifnot(identical(remote_eval(f(1), conn), 2))                      # warm: context, bootstrap
  stopifnot(identical(dbx_run_result(remote_job(f, 1, conn = conn)), 2))  # warm: staged runner
  eval_t <- vapply(seq_len(reps), function(i) secs(remote_eval(f(1), conn)), 0)
  job_t <- vapply(seq_len(reps), function(i) secs(dbx_run_result(remote_job(f, 1, conn = conn))), 0)
  rows <- data.frame(
    call = c("remote_eval(f(1))", "dbx_run_result(remote_job(f, 1))"),
    median = sprintf("%.3f s", c(stats::median(eval_t), stats::median(job_t))),
    overhead = c("", sprintf("%.2f s (goal < 1 s)", stats::median(job_t) - stats::median(eval_t))),
    check.names = FALSE)
  list(job_overhead = rows)
}
