# The bootstrap module and the R dispatcher, run by the real Python with rpy2
# exactly as a context runs them: the generated commands, one after another.

python_with_rpy2 <- function() {
  skip_if_no_rpy2()
  local_python()
}

# Run the commands (Python source) in one fresh Python process; its stdout.
# With `fs_root`, the process stands for a local cluster's context without
# /dbfs and /Volumes mounts: the platform contract's local side (as the
# worker installs it there) finds those paths under `fs_root`.
run_commands <- function(commands, env = character(), fs_root = NULL) {
  py <- python_with_rpy2()
  script <- tempfile(fileext = ".py")
  # The bootstrap's request records live in the temporary directory: a fresh
  # one per run, as these tests reuse session and request ids.
  tmp <- tempfile("dbrxr-py-tmp-")
  dir.create(tmp)
  env <- c(env, paste0("TMPDIR=", tmp))
  on.exit(unlink(c(script, tmp), recursive = TRUE))
  if (!is.null(fs_root)) {
    commands <- c(paste0(
      "import os, sys, types\n",
      "_m = types.ModuleType('dbrxr_local_platform')\n",
      "_m.file_path = lambda p: os.path.join(", encodeString(fs_root, quote = "'"), ", p.lstrip('/')) ",
      "if p.startswith(('/dbfs/', '/Volumes/')) else p\n",
      "sys.modules['dbrxr_local_platform'] = _m"), commands)
  }
  writeLines(paste(commands, collapse = "\n"), script)
  out <- suppressWarnings(system2(py, script, stdout = TRUE, stderr = FALSE, env = env))
  paste(out, collapse = "\n")
}

ids <- new.env()
request_code <- function(req, result = "") {
  req$protocol <- dbrxr:::protocol_version
  bytes <- serialize(req, NULL, xdr = FALSE)
  ids$n <- (ids$n %||% 0) + 1
  dbrxr:::call_code(bytes, NULL, result, request_id = paste0("t", ids$n))
}

markers <- function(out) {
  lines <- strsplit(out, "\n", fixed = TRUE)[[1]]
  lines[startsWith(lines, "DBRXR1:")]
}

decode_inline <- function(line) {
  unserialize(jsonlite::base64_dec(sub("^DBRXR1:INLINE ", "", line)))
}

test_that("a call before the bootstrap reports NOBOOT; bootstrap reports versions", {
  out <- run_commands(c(request_code(list(op = "ping")), dbrxr:::bootstrap_code(FALSE),
                        request_code(list(op = "ping"))))
  m <- markers(out)
  expect_equal(m[1], "DBRXR1:NOBOOT")
  ready <- dbrxr:::parse_marker(m[2])
  expect_equal(ready$kind, "READY")
  info <- ready$fields
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
  # A session of its own: the cluster keeps request records per session
  # (across contexts and runs), and a record of an earlier run would answer.
  sid <- basename(tempfile("s"))
  dir <- file.path(root, "dbfs", "tmp", "dbrxr", "sessions", sid)
  dir.create(dir, recursive = TRUE)
  big <- data.frame(matrix(runif(1.5e6), ncol = 10))  # 12 MB
  req <- list(op = "eval", expr = quote(big), globals = list(big = big),
              protocol = dbrxr:::protocol_version)
  bytes <- serialize(req, NULL, xdr = FALSE)
  writeBin(bytes, file.path(dir, "req.bin"))
  code <- c(dbrxr:::bootstrap_code(FALSE),
            "import time\n_t = time.time()",
            dbrxr:::call_code(NULL, paste0("dbfs:/tmp/dbrxr/sessions/", sid, "/req.bin"),
                              paste0("dbfs:/tmp/dbrxr/sessions/", sid, "/answer.bin")),
            "print('SECONDS', time.time() - _t)",
            dbrxr:::call_code(NULL, paste0("/dbfs/tmp/dbrxr/sessions/", sid, "/gone.bin"), "", request_id = "r2"))
  out <- run_commands(code, fs_root = root)
  m <- markers(out)
  file_m <- dbrxr:::parse_marker(m[2])
  expect_equal(file_m$kind, "FILE")
  expect_equal(file_m$fields$path, paste0("dbfs:/tmp/dbrxr/sessions/", sid, "/answer.bin"))
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
  expect_match(m$fields$problem, "rpy2")
})

test_that("a request sent again with the same id is answered from the cache, not run twice", {
  req <- list(op = "eval", expr = quote({ n <- get0("n_runs", globalenv(), ifnotfound = 0) + 1
                                           assign("n_runs", n, globalenv()); n }),
              globals = list(), protocol = dbrxr:::protocol_version)
  bytes <- serialize(req, NULL, xdr = FALSE)
  same <- dbrxr:::call_code(bytes, NULL, "", request_id = "same1")
  other <- dbrxr:::call_code(bytes, NULL, "", request_id = "other1")
  m <- markers(run_commands(c(dbrxr:::bootstrap_code(FALSE), same, same, other)))
  expect_identical(decode_inline(m[2])$value, 1)
  expect_identical(m[3], m[2])
  expect_identical(decode_inline(m[4])$value, 2)
})

test_that("a request sent again to a new context is answered from its record, or said to have maybe run", {
  # Each run_commands() is a new Python process: a new context of the same
  # session, which finds the records the earlier one left on the driver.
  sid <- basename(tempfile("rec"))
  withr::defer(unlink(file.path(c("/dev/shm", tempdir()), "dbrxr-answers", sid), recursive = TRUE))
  result <- paste0("dbfs:/tmp/dbrxr/sessions/", sid, "/result.bin")
  code <- function(expr, id) {
    bytes <- serialize(list(op = "eval", expr = expr, globals = list(),
                            protocol = dbrxr:::protocol_version), NULL, xdr = FALSE)
    dbrxr:::call_code(bytes, NULL, result, request_id = id)
  }
  counter <- quote({ f <- file.path(Sys.getenv("DBRXR_TEST_RUNS"), "runs")
                     cat("x\n", file = f, append = TRUE); length(readLines(f)) })
  runs <- withr::local_tempdir()
  env <- paste0("DBRXR_TEST_RUNS=", runs)
  boot <- dbrxr:::bootstrap_code(FALSE)
  first <- markers(run_commands(c(boot, code(counter, "done1")), env = env))
  again <- markers(run_commands(c(boot, code(counter, "done1")), env = env))
  expect_identical(decode_inline(first[2])$value, 1L)
  expect_identical(again[2], first[2])
  expect_length(readLines(file.path(runs, "runs")), 1L)
  # A context killed while it runs the request leaves its claim behind.
  killer <- quote(tools::pskill(Sys.getpid(), tools::SIGKILL))
  expect_length(markers(run_commands(c(boot, code(killer, "lost1")), env = env)), 1L)
  lost <- markers(run_commands(c(boot, code(killer, "lost1")), env = env))
  expect_identical(dbrxr:::parse_marker(lost[2])$kind, "MAYRAN")
  # A new id runs.
  other <- markers(run_commands(c(boot, code(counter, "new1")), env = env))
  expect_identical(decode_inline(other[2])$value, 2L)
})

test_that("a request staged as several parts is put together in order", {
  root <- withr::local_tempdir()
  dir <- file.path(root, "dbfs", "tmp", "s2")
  dir.create(dir, recursive = TRUE)
  x <- runif(3e5)
  bytes <- serialize(list(op = "eval", expr = quote(x), globals = list(x = x),
                          protocol = dbrxr:::protocol_version), NULL, xdr = FALSE)
  cuts <- split(seq_along(bytes), ceiling(seq_along(bytes) / 1e6))
  paths <- character()
  for (i in seq_along(cuts)) {
    writeBin(bytes[cuts[[i]]], file.path(dir, sprintf("%05d", i)))
    paths <- c(paths, sprintf("dbfs:/tmp/s2/%05d", i))
  }
  expect_gt(length(paths), 1)
  out <- run_commands(c(dbrxr:::bootstrap_code(FALSE), dbrxr:::call_code(NULL, paths, "")),
                      fs_root = root)
  expect_identical(decode_inline(markers(out)[2])$value, x)
})

test_that("the bootstrap starts R with faster heap growth, unless it is set already", {
  req <- request_code(list(op = "eval", expr = quote(Sys.getenv("R_GC_MEM_GROW")), globals = list()))
  grow <- function(env) {
    m <- markers(run_commands(c(dbrxr:::bootstrap_code(FALSE), req), env = env))
    decode_inline(m[2])$value
  }
  # system2() sets variables on top of this R's environment: clear ours.
  expect_identical(grow("R_GC_MEM_GROW="), "3")
  expect_identical(grow("R_GC_MEM_GROW=1"), "1")
})

test_that("a Python target answers through the same carrier, with its errors as data", {
  req <- list(op = "nonsense", protocol = dbrxr:::protocol_version)
  bytes <- serialize(req, NULL, xdr = FALSE)
  out <- run_commands(c(dbrxr:::bootstrap_code(FALSE),
                        dbrxr:::call_code(bytes, NULL, "", request_id = "p1", target = "spark"),
                        dbrxr:::call_code(bytes, NULL, "", request_id = "p2", target = "nosuchtarget")))
  m <- markers(out)
  ans <- decode_inline(m[2])
  expect_equal(ans$status, "error")
  # Without PySpark in this Python the target says so; with it, the op is refused.
  expect_true(ans$error$class %in% c("unsupported", "input"))
  expect_equal(decode_inline(m[3])$error$class, "unknown_target")
})

test_that("a context whose bootstrap holds other sources is asked to bootstrap again", {
  req <- request_code(list(op = "ping"))
  stale <- "import sys\nsys.modules['dbrxr_bootstrap'].SOURCES_HASH = 'old'"
  m <- markers(run_commands(c(dbrxr:::bootstrap_code(FALSE), stale, req)))
  expect_equal(m[2], "DBRXR1:NOBOOT")
})

test_that("deep recursion is an R error on the R thread, and R goes on", {
  deep <- request_code(list(op = "eval", globals = list(), expr = quote({
    options(expressions = 5e5)
    f <- function(n) if (n == 0) 0 else 1 + f(n - 1)
    f(1e5)
  })))
  after <- request_code(list(op = "eval", expr = quote(1 + 1), globals = list()))
  m <- markers(run_commands(c(dbrxr:::bootstrap_code(FALSE), deep, after)))
  ans <- decode_inline(m[2])
  expect_equal(ans$status, "error")
  expect_match(ans$error$message, "C stack usage")
  expect_identical(decode_inline(m[3])$value, 2)
})
