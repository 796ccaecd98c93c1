# One connection and run prefix for the whole suite; everything the suite made
# is removed when it ends, whatever happened (test-zz-cleanup.R also removes it
# earlier, and checks it is gone).
live_start()
withr::defer({
  live_cleanup()
  try(dbrxr::dbx_disconnect(live$conn), silent = TRUE)
}, testthat::teardown_env())
