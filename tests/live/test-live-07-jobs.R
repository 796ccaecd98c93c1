# R as a Databricks job (issue 21), once dbrxr has it.
test_that("remote_job() runs R as a one-off job and returns its value", {
  skip_if_not(exists("remote_job", envir = asNamespace("dbrxr")), "remote_job() is not in this dbrxr yet")
  run <- dbrxr::remote_job(function() sum(seq_len(10)), name = paste0(live$prefix, "_sum"),
                           wait = TRUE, conn = live$conn)
  # A one-off run (runs/submit) leaves no job to delete.
  expect_identical(dbrxr::dbx_run_result(run), 55L)
})
