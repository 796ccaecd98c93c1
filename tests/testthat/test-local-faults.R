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
