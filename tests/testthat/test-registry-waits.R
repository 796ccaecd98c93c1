# Registry calls are bounded (issue 36): a version out of range is bad input
# before any call (MLflow's server answered 500 and its client retried for
# 247 s), MLflow's own retries end within the caller's deadline, and a
# cancelled Python target never costs the context its process.

test_that("a model version out of range is an input error before any call", {
  local_clean_config()
  # Nothing listens there: any request would be a network error.
  conn <- dbx_connect(host = "http://127.0.0.1:9", token = "t", cluster_id = "c")
  withr::defer(dbx_disconnect(conn))
  for (uri in c("models:/main.m.lm/99999999999999999999", "models:/main.m.lm/2147483648",
                "models:/main.m.lm/0")) {
    e <- expect_error(remote_score(uri, mtcars, conn = conn), class = "dbrxr_input_error")
    expect_match(conditionMessage(e), "names no model version", fixed = TRUE)
  }
  e <- expect_error(remote_model("models:/main.m.lm/99999999999999999999", conn = conn),
                    class = "dbrxr_input_error")
})

test_that("MLflow's retries and waits fit in the time the caller has left", {
  py <- local_python()
  skip_if(!nzchar(py), "no Python")
  code <- paste(
    "import sys, types",
    sprintf("sys.path.insert(0, %s)", shQuote(system.file("python", package = "dbrxr"))),
    "sys.modules['dbrxr_bootstrap'] = types.ModuleType('dbrxr_bootstrap')",
    "import dbrxr_mlflow as m",
    "for left in (1, 2, 5, 10, 30, 60, 120, 600, 3600):",
    "    r, t, f, j = m.mlflow_bounds(left)",
    "    worst = (r + 1) * t + sum(f * 2 ** n + j for n in range(r))",
    "    print(left, r, t, worst)",
    sep = "\n")
  out <- system2(py, c("-c", shQuote(code)), stdout = TRUE)
  rows <- do.call(rbind, lapply(strsplit(out, " "), as.numeric))
  expect_equal(nrow(rows), 9)
  left <- rows[, 1]
  worst <- rows[, 4]
  expect_true(all(worst <= pmax(left, 1)), info = paste(out, collapse = "\n"))
  expect_true(all(rows[, 3] <= 120))
  expect_gte(rows[left == 600, 2], 3)  # long calls still retry
})

test_that("a cancel of Python code running on the R thread never costs the context", {
  conn <- shared_cluster()
  remote_eval(1, conn)  # bootstrapped: dbrxr_bootstrap is importable
  pid <- remote_eval(Sys.getpid(), conn)
  boots <- dbrxr:::remote_state(conn)$stats$bootstraps
  # As a Python target's handler runs (MLflow's HTTP retries): Python code on
  # the R thread, which R's interrupt flag does not stop. The local cluster
  # kills a context whose command ignores a cancel for 3 s.
  code <- paste("import dbrxr_bootstrap as b, time",
                "b.run_r(lambda: [time.sleep(0.05) for _ in range(1200)])", sep = "\n")
  took <- elapsed(expect_error(dbx_exec(code, conn, timeout = 1), class = "dbrxr_timeout_error"))
  expect_lt(took, 1 + 5)
  expect_identical(remote_eval(Sys.getpid(), conn), pid)
  expect_identical(dbrxr:::remote_state(conn)$stats$bootstraps, boots)
})
