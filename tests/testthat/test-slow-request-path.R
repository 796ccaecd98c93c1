# The slow tier of test-request-path.R: the long fault and eviction runs
# (make soak runs them with DBRXR_FAULT_CALLS=1000 DBRXR_EVICT_CALLS=100),
# and a 55 MB request with dropped connections.

test_that("200 calls under 30% 429 and 10% 503 all succeed and each command runs once", {
  skip_if_not_slow()
  expect_commands_once_under_429_503(200)
})

test_that("remote_score under 429, 503 and dropped connections: all right, user code run once each", {
  skip_if_not_slow()
  expect_scored_once_under_faults(as.integer(Sys.getenv("DBRXR_FAULT_CALLS", "60")))
})

test_that("a 55 MB remote_score succeeds with 30% of connections dropped", {
  skip_if_not_slow()
  # A cluster of its own: faults are injected into all of its routes.
  conn <- local_test_cluster()
  set.seed(5)
  big <- as.data.frame(matrix(runif(55e6 / 8), ncol = 10))
  fit <- lm(V1 ~ ., data = big[1:2000, ])
  remote_eval(1, conn)
  local_faults(conn, drop_rate = 0.3, seed = 9)
  pred <- remote_score(fit, big, conn = conn, progress = FALSE)
  expect_identical(pred, predict(fit, big))
  expect_gt(local_stats(conn)$faults_injected, 10)
})

test_that("contexts evicted every 0.05 s under two clients: every call answered, none run twice", {
  skip_if_not_slow()
  expect_evictions_answered_once(as.integer(Sys.getenv("DBRXR_EVICT_CALLS", "50")))
})
