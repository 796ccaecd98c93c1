# Last: remove everything this run made, and check that it is gone.
test_that("the run leaves no table, staged file, model or job behind", {
  tables <- live$tables
  staged <- live$staged_file
  left <- live_cleanup()
  expect_identical(left, character())
  for (t in tables) expect_false(live_table_exists(t), info = t)
  if (!is.null(staged)) {
    expect_error(dbrxr::dbx_download(staged, conn = live$conn), class = "dbrxr_error")
  }
})
