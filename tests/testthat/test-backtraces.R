# Issue 22, friction: "backtraces show no internal frames". rlang's simplified
# backtrace (what `rlang::last_error()` shows) ends at the frame named as the
# error's call; every dbrxr error names the user's verb, so the frames the
# user sees are theirs and the exported verb, never dbrxr's helpers nor
# cli/rlang.
file_env <- environment()

visible_frames <- function(e) {
  tr <- e$trace
  expect_false(is.null(tr))
  vis <- tr$visible
  data.frame(call = vapply(tr$call[vis], function(cl) deparse(cl, nlines = 1L)[1], ""),
             namespace = tr$namespace[vis], scope = tr$scope[vis])
}

expect_user_frames_only <- function(expr, class, verb) {
  user_code <- function() expr
  e <- expect_error(user_code(), class = class)
  frames <- visible_frames(e)
  # The frames from the user's own function down (testthat's are above it).
  top <- match("user_code()", frames$call)
  expect_false(is.na(top))
  frames <- frames[seq(top, nrow(frames)), , drop = FALSE]
  internal <- frames[frames$namespace %in% c("dbrxr", "cli", "rlang") & frames$scope == ":::" |
                       frames$namespace %in% c("cli", "rlang"), , drop = FALSE]
  expect_identical(nrow(internal), 0L, info = paste(internal$call, collapse = "; "))
  # The last frame shown is the verb the user called.
  expect_match(frames$call[nrow(frames)], paste0("^", verb, "\\("), info = paste(frames$call, collapse = "; "))
  invisible(e)
}

test_that("input errors show the user's frames and the verb, no internal frames", {
  expect_user_frames_only(remote_eval(1, conn = "x"), "dbrxr_input_error", "remote_eval")
  expect_user_frames_only(dbx_connect(host = "h.example.com", token = "t", cluster_id = "c",
                                      timeout = -1),
                          "dbrxr_input_error", "dbx_connect")
  expect_user_frames_only(local_cluster(max_contexts = "many"), "dbrxr_input_error",
                          "local_cluster")
})

test_that("errors from the Rust core and from the cluster show no internal frames", {
  local_clean_config()
  # A closed port: the Rust core's network error, raised in R.
  conn <- dbx_connect(host = "http://127.0.0.1:9", token = "dapi-bt-0123456789", cluster_id = "c")
  on.exit(dbx_disconnect(conn), add = TRUE)
  expect_user_frames_only(dbx_exec("1", conn), "dbrxr_error", "dbx_exec")

  live <- remote_test_conn(file_env)
  # R code that fails on the cluster, a Python command that fails, a timeout.
  expect_user_frames_only(remote_eval(stop("boom"), conn = live), "dbrxr_remote_error",
                          "remote_eval")
  expect_user_frames_only(dbx_exec("raise ValueError('bad')", live),
                          "dbrxr_remote_python_error", "dbx_exec")
  expect_user_frames_only(remote_eval(Sys.sleep(5), conn = live, timeout = 0.5),
                          "dbrxr_timeout_error", "remote_eval")
  fit <- lm(mpg ~ wt, mtcars)
  expect_user_frames_only(remote_score(fit, data.frame(x = 1), conn = live),
                          "dbrxr_remote_error", "remote_score")
})
