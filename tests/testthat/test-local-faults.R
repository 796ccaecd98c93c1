# Faults in the local cluster must never take the R process that hosts it down.
# Each scenario runs in a child R (callr), so a crash shows as a failed test
# instead of ending this session.

run_child <- function(f, ...) {
  callr::r(f, args = list(...), libpath = .libPaths(), timeout = 180, error = "error")
}

test_that("a worker killed with SIGKILL while idle neither crashes R nor fails the next call", {
  skip_if_no_rpy2()
  # Called at once, and once the process is surely gone (before the fix, the
  # second wrote to the dead pipe on a server thread and R crashed on SIGPIPE).
  for (pause in c(0, 0.5)) {
    res <- run_child(function(python, pause) {
      library(dbrxr)
      conn <- local_cluster(python = python)
      on.exit(dbx_disconnect(conn))
      first <- remote_eval(1 + 0, conn = conn)
      # R runs inside the context's Python process (rpy2): its pid is the worker's.
      pid <- remote_eval(Sys.getpid(), conn = conn)
      tools::pskill(pid, tools::SIGKILL)
      Sys.sleep(pause)
      second <- tryCatch(remote_eval(2 + 0, conn = conn),
                         dbrxr_error = function(e) paste("dbrxr error:", conditionMessage(e)))
      new_pid <- remote_eval(Sys.getpid(), conn = conn)
      list(first = first, second = second, moved = new_pid != pid)
    }, python = local_python(), pause = pause)
    # The child R ended normally (callr raises otherwise), and the call after
    # the kill got its value: the dead context was noticed, a new one ran it.
    expect_identical(res$first, 1)
    expect_identical(res$second, 2)
    expect_true(res$moved)
  }
})

test_that("a worker killed while busy gives a classed error, and the next call works", {
  skip_if_no_rpy2()
  res <- run_child(function(python) {
    library(dbrxr)
    conn <- local_cluster(python = python)
    on.exit(dbx_disconnect(conn))
    pid <- remote_eval(Sys.getpid(), conn = conn)
    killer <- processx::process$new("sh", c("-c", sprintf("sleep 2; kill -9 %d", pid)))
    err <- tryCatch(remote_eval({ Sys.sleep(60); "finished" }, conn = conn),
                    error = function(e) class(e))
    killer$wait()
    list(err = err, after = remote_eval(3 + 0, conn = conn))
  }, python = local_python())
  expect_true("dbrxr_error" %in% res$err)
  expect_identical(res$after, 3)
})

standalone_binary <- function() {
  bin <- normalizePath(file.path(testthat::test_path(), "..", "..", "src", "rust", "target",
                                 "release", "dbrxr-local"), mustWork = FALSE)
  if (!file.exists(bin)) testthat::skip("dbrxr-local is not built (make local-bin)")
  bin
}

test_that("two R processes sharing one standalone server get 100 results, none mixed up", {
  skip_if_no_rpy2()
  bin <- standalone_binary()
  server <- processx::process$new(bin, c("--port", "0", "--token", "dapi-shared", "--python", local_python()),
                                  stdout = "|", stderr = "|")
  withr::defer(server$kill())
  server$poll_io(10000)
  url <- sub("^dbrxr-local listening on ", "", server$read_output_lines(1))
  expect_match(url, "^http://127\\.0\\.0\\.1:[0-9]+$")
  worker <- function(url, who) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = "dapi-shared", cluster_id = "local-cluster")
    on.exit(dbx_disconnect(conn))
    out <- lapply(seq_len(50), function(i) {
      remote_eval(list(who = who, i = i, value = paste(who, i * 7L), pid = Sys.getpid()), conn = conn)
    })
    out
  }
  a <- callr::r_bg(worker, args = list(url = url, who = "a"), libpath = .libPaths())
  b <- callr::r_bg(worker, args = list(url = url, who = "b"), libpath = .libPaths())
  a$wait(180000)
  b$wait(180000)
  ra <- a$get_result()
  rb <- b$get_result()
  for (r in list(list("a", ra), list("b", rb))) {
    who <- r[[1]]
    got <- r[[2]]
    expect_length(got, 50)
    expect_identical(vapply(got, `[[`, "", "who"), rep(who, 50))
    expect_identical(vapply(got, `[[`, 1L, "i"), seq_len(50))
    expect_identical(vapply(got, `[[`, "", "value"), paste(who, seq_len(50) * 7L))
  }
  # Each process had its own context (its own worker).
  expect_length(unique(vapply(ra, `[[`, 1L, "pid")), 1)
  expect_false(ra[[1]]$pid == rb[[1]]$pid)
  expect_true(server$is_alive())
})

# A standalone server whose state directory is a tmpfs of `size` in a private
# mount namespace; skips where such a mount is not allowed.
standalone_on_tmpfs <- function(size, .env = parent.frame()) {
  bin <- standalone_binary()
  if (!nzchar(Sys.which("unshare"))) testthat::skip("no unshare(1) to mount a tmpfs")
  dir <- withr::local_tempdir(.local_envir = .env)
  script <- sprintf(
    "mount -t tmpfs -o size=%s tmpfs %s && mkdir -p %s/state && exec %s --port 0 --token dapi-disk --python %s --state-dir %s/state",
    size, dir, dir, bin, local_python(), dir)
  server <- processx::process$new("unshare", c("-rm", "sh", "-c", script), stdout = "|", stderr = "|")
  withr::defer(server$kill(), envir = .env)
  server$poll_io(10000)
  line <- server$read_output_lines(1)
  if (!length(line) || !grepl("^dbrxr-local listening on ", line)) {
    testthat::skip(paste("cannot mount a tmpfs here (unshare -rm):", server$read_all_error()))
  }
  sub("^dbrxr-local listening on ", "", line)
}

test_that("a full state directory gives a classed error, and calls work again once space is back", {
  skip_if_no_rpy2()
  url <- standalone_on_tmpfs("6m")
  conn <- dbx_connect(host = url, token = "dapi-disk", cluster_id = "local-cluster")
  withr::defer(dbx_disconnect(conn))
  expect_identical(remote_eval(1 + 1, conn = conn), 2)
  # 12 MB of random bytes must be staged (uploaded), and do not fit.
  big <- as.raw(sample.int(256L, 12e6, replace = TRUE) - 1L)
  err <- tryCatch(remote_eval(length(big), conn = conn), error = function(e) e)
  expect_s3_class(err, "dbrxr_http_error")
  expect_s3_class(err, "dbrxr_http_500")
  expect_match(conditionMessage(err), "no space left on device", fixed = TRUE)
  # The failed upload removed its partial file, so space is back.
  expect_identical(remote_eval(3 + 4, conn = conn), 7)
  small <- as.raw(1:200)
  expect_identical(remote_eval(sum(as.integer(small)), conn = conn), sum(1:200))
})
