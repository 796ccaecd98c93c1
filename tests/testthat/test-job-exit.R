# A job whose R process ends itself (killed by a signal, or quit() with a
# status) failed; its cluster was not lost (issue 36: it was reported as
# "lost its cluster", an INTERNAL_ERROR of the driver).

test_that("a job whose R kills itself or quits is a failed run that says so", {
  conn <- shared_cluster()
  run <- remote_job(function() tools::pskill(Sys.getpid(), 9L), conn = conn, wait = TRUE)
  expect_identical(run$state, "TERMINATED")
  expect_identical(run$result, "FAILED")
  e <- expect_error(dbx_run_result(run), class = "dbrxr_run_failed_error")
  expect_false(inherits(e, "dbrxr_run_cluster_error"))
  expect_match(conditionMessage(e), "killed by signal 9 (SIGKILL)", fixed = TRUE)
  expect_false(grepl("lost its cluster", conditionMessage(e), fixed = TRUE))

  run <- remote_job(function() quit(save = "no", status = 3L), conn = conn, wait = TRUE)
  expect_identical(run$result, "FAILED")
  e <- expect_error(dbx_run_result(run), class = "dbrxr_run_failed_error")
  expect_match(conditionMessage(e), "exited with status 3", fixed = TRUE)

  # The cluster is as it was: the next run works.
  expect_identical(dbx_run_result(remote_job(function() 42L, conn = conn)), 42L)
})
