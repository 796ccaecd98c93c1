# The slow tier of test-future.R: four workers at once.

test_that("future_lapply runs on 4 workers in parallel once they are started", {
  skip_if_not_slow()
  skip_if_not_installed("future")
  local_databricks_plan(workers = 4)
  expect_equal(future::nbrOfWorkers(), 4)
  # Warm-up: starts and bootstraps the 4 contexts.
  pids <- future.apply::future_lapply(1:4, function(i) Sys.getpid())
  expect_length(unique(unlist(pids)), 4)
  expect_false(Sys.getpid() %in% unlist(pids))
  expect_equal(future::nbrOfFreeWorkers(), 4)
  res <- NULL
  t <- elapsed(res <- future.apply::future_lapply(1:8, function(i) {
    start <- as.numeric(Sys.time())
    Sys.sleep(1)
    list(value = i^2, start = start, end = as.numeric(Sys.time()))
  }))
  expect_identical(lapply(res, `[[`, "value"), as.list((1:8)^2))
  # Four ran at once (read off when each ran, on the one machine's clock:
  # wall-time bounds alone are flaky on a loaded 2-core CI machine), and
  # the whole took far less than one after another (8 s).
  start <- vapply(res, `[[`, 0, "start")
  end <- vapply(res, `[[`, 0, "end")
  at_once <- vapply(start, function(s) sum(start <= s & end > s), 0)
  expect_equal(max(at_once), 4)
  expect_lt(t, 6)
})
