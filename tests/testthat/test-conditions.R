test_that("Rust errors become classed conditions with their fields", {
  err <- expect_error(
    dbrxr:::raise_rust_error(list(class = "dbrxr_http_error", message = "GET failed",
                                  hints = "try again", status = 404L,
                                  error_code = "RESOURCE_DOES_NOT_EXIST", request_id = "r-1",
                                  attempts = 3L, fields = list(path = "/x"))),
    class = "dbrxr_http_404")
  expect_s3_class(err, c("dbrxr_http_error", "dbrxr_error"))
  expect_equal(err$status, 404L)
  expect_equal(err$error_code, "RESOURCE_DOES_NOT_EXIST")
  expect_equal(err$request_id, "r-1")
  expect_equal(err$path, "/x")
  expect_match(conditionMessage(err), "after 3 attempts")
})

test_that("a malformed result from the Rust core is an internal error", {
  expect_error(dbrxr:::unwrap(list()), class = "dbrxr_internal_error")
})

test_that("braces in messages are shown, not interpolated", {
  err <- expect_error(dbrxr:::abort_dbrxr("body was {\"error\": 1}", "dbrxr_http_error"),
                      class = "dbrxr_error")
  expect_match(conditionMessage(err), "{\"error\": 1}", fixed = TRUE)
})

test_that("the Rust core turns bad input into errors, not crashes", {
  expect_error(dbrxr:::unwrap(dbrxr:::rust_parse_marker("no marker here")),
               class = "dbrxr_internal_error")
  expect_error(dbrxr:::unwrap(dbrxr:::rust_sha256("not raw")), class = "dbrxr_input_error")
  expect_error(dbrxr:::unwrap(dbrxr:::rust_sha256_file(tempfile())), class = "dbrxr_io_error")
})

test_that("a numeric error_code equal to the status is said once", {
  err <- expect_error(
    dbrxr:::raise_rust_error(list(class = "dbrxr_auth_error", message = "Invalid access token.",
                                  status = 403L, error_code = "403", fields = list())),
    class = "dbrxr_http_403")
  expect_s3_class(err, "dbrxr_auth_error")
  expect_match(conditionMessage(err), "HTTP 403$|HTTP 403\n")
  expect_false(grepl("403 403", conditionMessage(err)))
})
