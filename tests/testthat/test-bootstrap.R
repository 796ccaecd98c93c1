# The bootstrap module and the R dispatcher, run by the real Python with rpy2
# exactly as a context runs them: the generated commands, one after another.

python_with_rpy2 <- function() {
  skip_if_no_rpy2()
  local_python()
}

# Run the commands (Python source) in one fresh Python process; its stdout.
run_commands <- function(commands, env = character()) {
  py <- python_with_rpy2()
  script <- tempfile(fileext = ".py")
  on.exit(unlink(script))
  writeLines(paste(commands, collapse = "\n"), script)
  out <- suppressWarnings(system2(py, script, stdout = TRUE, stderr = FALSE, env = env))
  paste(out, collapse = "\n")
}

request_code <- function(req, result = "", inline = TRUE, dir = NULL) {
  req$protocol <- dbrxr:::protocol_version
  bytes <- serialize(req, NULL, xdr = FALSE)
  if (inline) return(dbrxr:::call_code(dbrxr:::rust_base64_encode(bytes)$value, NULL, result))
  path <- file.path(dir, paste0("req-", length(bytes), ".bin"))
  writeBin(bytes, path)
  dbrxr:::call_code("", path, result)
}

markers <- function(out) {
  lines <- strsplit(out, "\n", fixed = TRUE)[[1]]
  lines[startsWith(lines, "DBRXR1:")]
}

decode_inline <- function(line) {
  unserialize(dbrxr:::rust_base64_decode(sub("^DBRXR1:INLINE ", "", line))$value)
}

test_that("a call before the bootstrap reports NOBOOT; bootstrap reports versions", {
  out <- run_commands(c(request_code(list(op = "ping")), dbrxr:::bootstrap_code(FALSE),
                        request_code(list(op = "ping"))))
  m <- markers(out)
  expect_equal(m[1], "DBRXR1:NOBOOT")
  ready <- dbrxr:::parse_marker(m[2])
  expect_equal(ready$kind, "READY")
  info <- dbrxr:::parse_fields(ready$payload)
  expect_equal(info$r_version, R.version.string)
  expect_match(info$rpy2_version, "^[0-9]+\\.")
  expect_equal(decode_inline(m[3])$value$r_version, R.version.string)
})

test_that("scoring inline is identical to predict(), and the model stays cached", {
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  obj <- serialize(fit, NULL, xdr = FALSE)
  out <- run_commands(c(
    dbrxr:::bootstrap_code(FALSE),
    request_code(list(op = "score", hash = "h1", object = obj, newdata = mtcars, args = list())),
    request_code(list(op = "score", hash = "h1", newdata = mtcars[1:5, ],
                      args = list(interval = "confidence"))),
    request_code(list(op = "score", hash = "h2", newdata = mtcars, args = list()))))
  m <- markers(out)
  expect_identical(decode_inline(m[2])$value, predict(fit, mtcars))
  expect_identical(decode_inline(m[3])$value, predict(fit, mtcars[1:5, ], interval = "confidence"))
  expect_equal(decode_inline(m[4])$status, "need_object")
})

test_that("remote output, messages, warnings and errors come back in order", {
  f <- function() { print("hi"); message("note"); warning("careful"); g() }
  g <- function() stop("boom")
  out <- run_commands(c(dbrxr:::bootstrap_code(FALSE),
    request_code(list(op = "eval", expr = quote(f()), globals = list(f = f, g = g)))))
  ans <- decode_inline(markers(out)[2])
  expect_equal(ans$status, "error")
  expect_equal(vapply(ans$events, `[[`, "", "type"), c("output", "message", "warning"))
  expect_equal(ans$error$message, "boom")
  expect_equal(ans$error$call, "g()")
  expect_equal(ans$error$traceback, c("f()", "g()", "stop(\"boom\")"))
})

test_that("missing packages are reported before anything runs", {
  out <- run_commands(c(dbrxr:::bootstrap_code(FALSE),
    request_code(list(op = "eval", expr = quote(stop("ran")), globals = list(),
                      packages = c("stats", "dbrxrNoSuchPackage")))))
  ans <- decode_inline(markers(out)[2])
  expect_equal(ans$status, "missing_packages")
  expect_true(is.na(ans$versions[["dbrxrNoSuchPackage"]]))
  expect_equal(ans$versions[["stats"]], as.character(packageVersion("stats")))
})

test_that("staged requests and answers go through the mapped /dbfs paths, fast", {
  root <- withr::local_tempdir()
  dir <- file.path(root, "dbfs", "tmp", "dbrxr", "sessions", "s1")
  dir.create(dir, recursive = TRUE)
  big <- data.frame(matrix(runif(1.5e6), ncol = 10))  # 12 MB
  req <- list(op = "eval", expr = quote(big), globals = list(big = big),
              protocol = dbrxr:::protocol_version)
  bytes <- serialize(req, NULL, xdr = FALSE)
  writeBin(bytes, file.path(dir, "req.bin"))
  code <- c(dbrxr:::bootstrap_code(FALSE),
            "import time\n_t = time.time()",
            dbrxr:::call_code("", "dbfs:/tmp/dbrxr/sessions/s1/req.bin",
                              "dbfs:/tmp/dbrxr/sessions/s1/answer.bin"),
            "print('SECONDS', time.time() - _t)",
            dbrxr:::call_code("", "/dbfs/tmp/dbrxr/sessions/s1/gone.bin", ""))
  out <- run_commands(code, env = paste0("DBRXR_LOCAL_FS_ROOT=", root))
  m <- markers(out)
  file_m <- dbrxr:::parse_marker(m[2])
  expect_equal(file_m$kind, "FILE")
  expect_equal(dbrxr:::parse_fields(file_m$payload)$path, "dbfs:/tmp/dbrxr/sessions/s1/answer.bin")
  ans <- unserialize(readBin(file.path(dir, "answer.bin"), "raw", 2e7))
  expect_identical(ans$value, big)
  # 12 MB in and out through rpy2: the raw-memory path takes milliseconds,
  # bytes(ByteVector) would take seconds.
  secs <- as.numeric(sub(".*SECONDS ([0-9.e-]+).*", "\\1", out))
  expect_lt(secs, 2)
  expect_equal(dbrxr:::parse_marker(m[3])$kind, "NOFILE")
})

test_that("rpy2 missing gives NORPY2 with the reason", {
  py <- python_with_rpy2()
  code <- c("import sys\nsys.modules['rpy2'] = None", dbrxr:::bootstrap_code(FALSE))
  m <- dbrxr:::parse_marker(markers(run_commands(code))[1])
  expect_equal(m$kind, "NORPY2")
  expect_match(dbrxr:::parse_fields(m$payload)$problem, "rpy2")
})
