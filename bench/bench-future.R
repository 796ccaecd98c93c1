# The future backend on a local cluster: 100 one-second tasks on 8 workers
# (8 execution contexts), against the ideal 100 / 8 = 12.5 s, through
# future.apply::future_lapply() (8 chunks) and as 100 separate futures (each
# waits for a free worker). Also the time to start the 8 workers.

bench_future <- function(tasks = 100L, workers = 8L) {
  conn <- local_cluster()
  on.exit({
    future::plan(future::sequential)
    dbx_disconnect(conn)
  }, add = TRUE)
  future::plan(databricks, conn = conn, workers = workers)
  secs <- function(expr) {
    t <- proc.time()[["elapsed"]]
    force(expr)
    proc.time()[["elapsed"]] - t
  }
  task <- function(i) {
    Sys.sleep(1)
    i
  }
  start <- secs(future.apply::future_lapply(seq_len(workers), function(i) Sys.getpid()))
  res <- NULL
  lapply_t <- secs(res <- future.apply::future_lapply(seq_len(tasks), task))
  stopifnot(identical(res, as.list(seq_len(tasks))))
  futures_t <- secs({
    fs <- lapply(seq_len(tasks), function(i) future::future(task(i)))
    res <- future::value(fs)
  })
  stopifnot(identical(res, as.list(seq_len(tasks))))
  ideal <- tasks / workers
  rows <- data.frame(
    run = c(sprintf("start %d workers (contexts created and bootstrapped)", workers),
            sprintf("future_lapply(): %d one-second tasks, %d workers", tasks, workers),
            sprintf("%d future() calls, then value(): one-second tasks, %d workers", tasks, workers)),
    elapsed = sprintf("%.1f s", c(start, lapply_t, futures_t)),
    ideal = c("", sprintf("%.1f s", ideal), sprintf("%.1f s", ideal)),
    `vs ideal (goal <= 1.25x)` = c("", sprintf("%.2fx", c(lapply_t, futures_t) / ideal)),
    check.names = FALSE)
  list(parallel_tasks = rows)
}
