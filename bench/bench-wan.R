# The request path at real network latency: the local cluster delays every
# API request by 0, 50 or 150 ms (`local_faults(latency_ms =)`), as a
# workspace 20-200 ms away does. For each: time, API requests, and the ratio
# to the floor, where
#   floor = k x latency + bytes / B
#   k = the requests that must be sequential: 2 for an inline call (execute,
#       one status check), 4 for a staged one (upload, execute, status,
#       download), 2 for an upload or a download (create or put, then data)
#   B = loopback bandwidth, measured here at 0 ms by the 1 GB round trip.
# Also, at 0 ms: 1e6 x 10 lm scoring against local predict(), and a warm
# 1-row call against dbx_exec("pass").

bench_wan <- function() {
  token <- "wan-bench-token-0123456789abcdef"
  owner <- local_cluster(token = token)
  on.exit(dbx_disconnect(owner), add = TRUE)
  li <- owner$local_info
  vol <- dbx_connect(host = li$url, token = token, cluster_id = li$cluster_id,
                     staging = "/Volumes/main/default/vol/dbrxr-bench")
  on.exit(dbx_disconnect(vol), add = TRUE)
  set.seed(42)
  big <- as.data.frame(matrix(runif(1e7), ncol = 10))   # 1e6 x 10, 80 MB
  fit <- stats::lm(stats::as.formula("V1 ~ .", env = globalenv()), data = big[1:2000, ])
  nd1 <- big[1, -1, drop = FALSE]
  gb_file <- tempfile(fileext = ".bin")
  on.exit(unlink(c(gb_file, paste0(gb_file, ".back"))), add = TRUE)
  con <- file(gb_file, "wb")
  for (i in 1:16) writeBin(as.raw(sample.int(256, 64 * 2^20, replace = TRUE) - 1L), con)
  close(con)
  gb <- file.size(gb_file)

  requests <- function() {
    r <- dbrxr:::local_stats(owner)$routes
    sum(vapply(r[grepl(" /api/", names(r))], function(x) as.numeric(x$count), 0))
  }
  # Short calls are timed as a loop (the clock ticks in milliseconds): the
  # mean of `reps` calls; long ones one at a time, the median.
  measure <- function(f, reps = 1L, short = FALSE) {
    f()  # warm: the model is cached, the context exists
    n0 <- requests()
    time <- if (short) {
      system.time(for (i in seq_len(reps)) f())[["elapsed"]] / reps
    } else {
      stats::median(vapply(seq_len(reps), function(i) system.time(f())[["elapsed"]], 0))
    }
    list(time = time, requests = (requests() - n0) / reps)
  }
  loop_time <- function(f, reps) {
    f()
    stats::median(vapply(1:3, function(k) system.time(for (i in seq_len(reps)) f())[["elapsed"]] / reps, 0))
  }
  cases <- list(
    `dbx_exec("pass")` = list(k = 2, bytes = 0, reps = 9L, short = TRUE,
                              f = function() dbx_exec("pass", owner)),
    `warm 1-row remote_score` = list(k = 2, bytes = 0, reps = 9L, short = TRUE,
                                     f = function() remote_score(fit, nd1, conn = owner, progress = FALSE)),
    `80 MB remote_score, DBFS` = list(k = 4, bytes = 80e6 + 8e6, reps = 3L,
                                      f = function() remote_score(fit, big, conn = owner, progress = FALSE)),
    `80 MB remote_score, Volume` = list(k = 4, bytes = 80e6 + 8e6, reps = 3L,
                                        f = function() remote_score(fit, big, conn = vol, progress = FALSE)),
    `1 GB upload, Volume` = list(k = 2, bytes = gb, reps = 1L,
                                 f = function() dbx_upload(gb_file, "/Volumes/main/default/vol/bench/gb.bin", conn = vol)),
    `1 GB download, Volume` = list(k = 2, bytes = gb, reps = 1L,
                                   f = function() dbx_download("/Volumes/main/default/vol/bench/gb.bin",
                                                               paste0(gb_file, ".back"), conn = vol)))
  stopifnot(identical(remote_score(fit, big, conn = owner, progress = FALSE), stats::predict(fit, big)))
  rows <- list()
  bandwidth <- NA_real_
  pass_time <- NA_real_
  for (latency in c(0, 50, 150)) {
    dbrxr:::local_faults(owner, latency_ms = latency)
    res <- lapply(cases, function(cs) {
      measure(cs$f, if (isTRUE(cs$short) && latency == 0) 100L else cs$reps, isTRUE(cs$short))
    })
    if (latency == 0) {
      bandwidth <- 2 * gb / (res[["1 GB upload, Volume"]]$time + res[["1 GB download, Volume"]]$time)
    }
    pass_time <- res[[1]]$time
    for (name in names(cases)) {
      cs <- cases[[name]]
      floor <- cs$k * latency / 1000 + cs$bytes / bandwidth
      rows[[length(rows) + 1L]] <- data.frame(
        latency = sprintf("%d ms", latency), case = name, time = fmt_s(res[[name]]$time),
        requests = format(round(res[[name]]$requests, 1)),
        floor = fmt_s(floor),
        `time / floor` = if (floor > 0) sprintf("%.1fx", res[[name]]$time / floor) else "",
        `time / pass` = if (name == "warm 1-row remote_score") sprintf("%.2fx", res[[name]]$time / pass_time) else "",
        check.names = FALSE)
    }
  }
  dbrxr:::local_faults(owner)
  stopifnot(identical(readBin(paste0(gb_file, ".back"), "raw", 2^20), readBin(gb_file, "raw", 2^20)))

  # Loopback overhead at 0 ms.
  # Interleaved, so both sides of a ratio see the same machine.
  big_times <- vapply(1:7, function(i) {
    c(system.time(stats::predict(fit, big))[["elapsed"]],
      system.time(remote_score(fit, big, conn = owner, progress = FALSE))[["elapsed"]])
  }, numeric(2))
  local <- stats::median(big_times[1, ])
  remote <- stats::median(big_times[2, ])
  small_times <- vapply(1:7, function(i) {
    c(loop_time(function() dbx_exec("pass", owner), 100L),
      loop_time(function() remote_score(fit, nd1, conn = owner, progress = FALSE), 100L))
  }, numeric(2))
  pass <- stats::median(small_times[1, ])
  warm1 <- stats::median(small_times[2, ])
  list(
    latency = do.call(rbind, rows),
    loopback = data.frame(
      case = c("1e6 x 10 lm: remote_score / local predict()", "warm 1-row remote_score / dbx_exec(\"pass\")"),
      remote = c(fmt_s(remote), fmt_s(warm1)), local = c(fmt_s(local), fmt_s(pass)),
      ratio = sprintf("%.1fx", c(remote / local, warm1 / pass)),
      target = c("<= 3x", "<= 2x")),
    bandwidth = data.frame(`loopback bandwidth (B)` = sprintf("%.0f MB/s", bandwidth / 1e6),
                           check.names = FALSE))
}

fmt_s <- function(x) if (x < 1) sprintf("%.1f ms", 1000 * x) else sprintf("%.2f s", x)
