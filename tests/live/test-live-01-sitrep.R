# First: is the workspace ready at all? Everything after depends on it.
test_that("dbx_sitrep() finds nothing that will fail", {
  report <- dbrxr::dbx_sitrep(live$conn, schema = live$schema, timeout = 600)
  print(report)
  must <- c("credentials", "cluster", "access mode", "python", "r", "staging", "spark", "grants")
  expect_true(all(report$status[report$check %in% must] %in% c("ok", "warn")),
              info = paste(format(report), collapse = "\n"))
  expect_false(any(report$status == "fail"))
})
