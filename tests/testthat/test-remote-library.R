# remote_library(): R libraries built once per manifest under the staging
# location, from a CRAN-like repository the tests make (helper-library.R).
# The local cluster's contexts see only the machine's system libraries plus a
# site library of their own, so "missing on the cluster" is real.
# A cluster of its own (remote_test_conn(own = TRUE)): remote_library() sets what
# every later call on the connection puts first on .libPaths().
file_env <- environment()

marker_of <- function(conn, lib) file.path(local_library_dir(conn, lib), ".dbrxr-complete")

test_that("remote_library() checks its arguments before any network call", {
  repo <- library_test_repo()
  expect_error(remote_library(), class = "dbrxr_input_error")
  expect_error(remote_library(1), class = "dbrxr_input_error")
  expect_error(remote_library("not a name"), class = "dbrxr_input_error")
  expect_error(remote_library("x", repos = NA_character_), class = "dbrxr_input_error")
  expect_error(remote_library(local = tempfile(fileext = ".tar.gz")), class = "dbrxr_input_error")
  not_tar <- withr::local_tempfile(fileext = ".tar.gz", lines = "no")
  expect_error(remote_library(local = not_tar), class = "dbrxr_input_error")
  expect_error(remote_library(lockfile = tempfile()), class = "dbrxr_input_error")
  bad_lock <- withr::local_tempfile(lines = "{ not json")
  expect_error(remote_library(lockfile = bad_lock), class = "dbrxr_input_error")
  gh_lock <- withr::local_tempfile(fileext = ".lock")
  jsonlite::write_json(list(R = list(Version = "4.2.2", Repositories = list()),
                            Packages = list(gh = list(Package = "gh", Version = "1.0",
                                                      Source = "GitHub"))),
                       gh_lock, auto_unbox = TRUE)
  err <- expect_error(remote_library(lockfile = gh_lock), class = "dbrxr_input_error")
  expect_equal(err$package, "gh")
  expect_error(remote_library("dbxA", repos = repo$url, rebuild = NA), class = "dbrxr_input_error")
  expect_error(remote_library("dbxA", repos = repo$url, timeout = -1), class = "dbrxr_input_error")
})

test_that("a package missing on the cluster: the error gives the remote_library() call", {
  conn <- remote_test_conn(file_env, own = TRUE)
  local_test_packages("dbxA")   # this session only
  model <- dbxA::dbxA_model(1)
  err <- expect_error(remote_score(model, data.frame(x = 1:3), conn = conn),
                      class = "dbrxr_missing_package_error")
  expect_equal(err$package, "dbxA")
  expect_match(conditionMessage(err), "remote_library(\"dbxA\", conn = conn)", fixed = TRUE)
})

test_that("remote_library() builds pkgA with its dependency once; the same manifest, and a restart, install nothing", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  local_test_packages("dbxA")

  out <- capture.output(
    msgs <- capture_messages(env <- remote_library("dbxA", repos = repo$url, conn = conn,
                                                   progress = TRUE)))
  expect_s3_class(env, "dbx_library")
  expect_equal(env$packages$package, c("dbxA", "dbxB"))
  expect_equal(env$packages$version, c("1.0.0", "2.0.0"))
  expect_equal(env$packages$source, c("repository", "repository"))
  expect_setequal(env$installed, c("dbxA", "dbxB"))
  expect_match(env$hash, "^[0-9a-f]{32}$")
  expect_equal(env$path, paste0("/dbfs/tmp/dbrxr/libraries/", env$hash))
  expect_identical(dbrxr:::remote_state(conn)$library$path, env$path)
  # Progress: each package announced, its installation output shown.
  expect_true(any(grepl("Installing dbxB 2.0.0 (1/2)", msgs, fixed = TRUE)))
  expect_true(any(grepl("Installing dbxA 1.0.0 (2/2)", msgs, fixed = TRUE)))
  expect_true(any(grepl("DONE (dbxA)", out, fixed = TRUE)))
  # On the cluster's storage: both packages and the marker, nothing else.
  dir <- local_library_dir(conn, env)
  expect_true(file.exists(marker_of(conn, env)))
  expect_setequal(list.files(dir), c("dbxA", "dbxB"))
  expect_equal(list.files(dirname(dir), all.files = TRUE, no.. = TRUE), env$hash)
  expect_output(print(env), env$hash)

  # Scoring loads dbxA (and dbxB) from the library, identically.
  model <- dbxA::dbxA_model(10)
  nd <- data.frame(x = c(1.5, -2, 3))
  expect_identical(remote_score(model, nd, conn = conn), predict(model, nd))
  # At the library's cluster path (/dbfs/..., as on Databricks).
  expect_equal(remote_eval(find.package("dbxB"), conn), file.path(env$path, "dbxB"))
  pk <- remote_packages(conn)
  expect_named(pk, c("package", "local_version", "remote_version", "where", "status"))
  expect_equal(pk$where[pk$package == "dbxA"], env$hash)
  expect_equal(pk$status[pk$package == "dbxA"], "same")
  expect_equal(pk$where[pk$package == "stats"], "system")

  # The same manifest again: one round trip, nothing installed, the library untouched.
  built <- file.mtime(marker_of(conn, env))
  requests <- dbrxr:::remote_state(conn)$stats$requests
  t0 <- Sys.time()
  again <- remote_library("dbxA", repos = repo$url, conn = conn)
  took <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  expect_lt(took, 1)
  expect_equal(dbrxr:::remote_state(conn)$stats$requests - requests, 1)
  expect_identical(again$installed, character())
  expect_identical(again$hash, env$hash)
  expect_identical(again$built, env$built)
  expect_equal(file.mtime(marker_of(conn, env)), built)

  # After a cluster restart the connection still uses its library...
  dbrxr:::local_restart(conn)
  expect_identical(remote_score(model, nd, conn = conn), predict(model, nd))
  # ...and remote_library() finds it by hash: nothing installed, under 1 s.
  t0 <- Sys.time()
  after <- remote_library("dbxA", repos = repo$url, conn = conn)
  took <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  expect_lt(took, 1)
  expect_identical(after$installed, character())
  expect_identical(after$hash, env$hash)
  expect_equal(file.mtime(marker_of(conn, env)), built)
})

test_that("a lockfile pins an older version than the repository's newest; it is installed", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  local_test_packages("dbxA")          # dbxB 2.0.0 here
  lock <- write_test_lockfile(withr::local_tempfile(fileext = ".lock"),
                              c(dbxA = "1.0.0", dbxB = "1.0.0"))
  w <- expect_warning(env <- remote_library(lockfile = lock, conn = conn),
                      class = "dbrxr_version_warning")
  expect_equal(env$packages$version[env$packages$package == "dbxB"], "1.0.0")
  expect_warning(v <- remote_eval(dbxB::dbxB_version(), conn), class = "dbrxr_version_warning")
  expect_equal(v, "1.0.0")
  # One warning, each package once.
  expect_equal(w$package, "dbxB")
  expect_equal(w$local_version, "2.0.0")
  expect_equal(w$remote_version, "1.0.0")
  expect_match(conditionMessage(w), "dbxB: 2.0.0 here, 1.0.0 in the library", fixed = TRUE)
  expect_true(file.exists(marker_of(conn, env)))
})

test_that("a local tarball of a package in no repository installs and is used", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  env <- remote_library("dbxLocal", local = repo$local, repos = repo$url, conn = conn)
  src <- env$packages$source[env$packages$package == "dbxLocal"]
  expect_equal(src, paste0("local:", dbrxr:::unwrap(dbrxr:::rust_sha256(
    readBin(repo$local, "raw", file.size(repo$local))))))
  expect_equal(env$packages$version[env$packages$package == "dbxB"], "2.0.0")
  expect_identical(remote_eval(predict(dbxLocal::dbxLocal_model(), data.frame(x = 1:2)), conn),
                   paste("dbxLocal 0.1.0 with dbxB 2.0.0", 1:2))
  # remote_install_packages() extends the connection's manifest (names or tarballs).
  ext <- remote_install_packages("dbxC", conn, repos = repo$url)
  expect_setequal(ext$packages$package, c("dbxB", "dbxC", "dbxLocal"))
  expect_setequal(ext$installed, c("dbxB", "dbxC", "dbxLocal"))
  expect_identical(dbrxr:::remote_state(conn)$library$hash, ext$hash)
  expect_equal(remote_eval(dbxC::dbxC_hello(), conn), "hello from dbxC")
  expect_equal(remote_eval(dbxLocal::dbxLocal_model(), conn), structure(list(), class = "dbxLocal_model"))
})

test_that("a package that fails to install is a dbrxr_remote_error naming it; no marker, the next call retries", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  before <- dbrxr:::remote_state(conn)$library
  err <- expect_error(remote_library(c("dbxC", "dbxBroken"), repos = repo$url, conn = conn),
                      class = "dbrxr_remote_error")
  expect_equal(err$package, "dbxBroken")
  expect_match(conditionMessage(err), "dbxBroken")
  expect_match(conditionMessage(err), "fails to install, on purpose", fixed = TRUE)
  expect_true(any(grepl("on purpose", err$log, fixed = TRUE)))
  root <- dirname(local_library_dir(conn, before))
  libs_before <- list.files(root, all.files = TRUE, no.. = TRUE)
  expect_false(any(startsWith(libs_before, ".")))        # no temporary copies left
  expect_true(all(file.exists(file.path(root, libs_before, ".dbrxr-complete"))))
  expect_identical(dbrxr:::remote_state(conn)$library$hash, before$hash)
  # The next call builds again (and fails again, the same way).
  msgs <- character()
  out <- capture.output(err2 <- expect_error(withCallingHandlers(
    remote_library(c("dbxC", "dbxBroken"), repos = repo$url, conn = conn, progress = TRUE),
    message = function(m) { msgs <<- c(msgs, conditionMessage(m)); invokeRestart("muffleMessage") }),
    class = "dbrxr_remote_error"))
  expect_true(any(grepl("lazy loading failed for package", out)))
  expect_true(any(grepl("Installing dbxBroken", msgs)))
  expect_equal(err2$package, "dbxBroken")
  expect_setequal(list.files(root, all.files = TRUE, no.. = TRUE), libs_before)
})

test_that("a package in no repository, and a timeout, are errors before anything is left behind", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  err <- expect_error(remote_library("dbxNoSuch", repos = repo$url, conn = conn),
                      class = "dbrxr_remote_error")
  expect_equal(err$package, "dbxNoSuch")
  lock <- write_test_lockfile(withr::local_tempfile(fileext = ".lock"), c(dbxB = "0.5.0"))
  err <- expect_error(remote_library(lockfile = lock, conn = conn), class = "dbrxr_remote_error")
  expect_match(conditionMessage(err), "dbxB 0.5.0")
  err <- expect_error(remote_library("dbxC", repos = repo$url, conn = conn, rebuild = TRUE,
                                     timeout = 0.001),
                      class = "dbrxr_timeout_error")
  expect_equal(err$package, "dbxC")
})

test_that("rebuild = TRUE builds the library again in place", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  env <- remote_library("dbxC", repos = repo$url, conn = conn)
  re <- remote_library("dbxC", repos = repo$url, conn = conn, rebuild = TRUE)
  expect_identical(re$hash, env$hash)
  expect_identical(re$installed, "dbxC")
  expect_true(file.exists(marker_of(conn, re)))
  expect_equal(remote_eval(dbxC::dbxC_hello(), conn), "hello from dbxC")
  root <- dirname(local_library_dir(conn, re))
  expect_false(any(startsWith(list.files(root, all.files = TRUE, no.. = TRUE), ".")))
})

test_that("two R processes building the same manifest at once end with one library, both succeeding", {
  skip_if_not_installed("callr")
  repo <- library_test_repo()
  token <- "library-race-token-0123456789"
  conn <- local_test_cluster(token = token)
  go <- tempfile("go-")
  ready <- c(tempfile("ready-"), tempfile("ready-"))
  racer <- function(url, token, cluster_id, repos, ready, go) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    remote_eval(1, conn)            # context up and bootstrapped
    file.create(ready)
    while (!file.exists(go)) Sys.sleep(0.01)
    lib <- remote_library("dbxA", repos = repos, conn = conn)
    list(hash = lib$hash, installed = lib$installed, won = lib$won,
         b = remote_eval(dbxB::dbxB_version(), conn))
  }
  env <- c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep))
  kids <- lapply(1:2, function(i) {
    callr::r_bg(racer, args = list(conn$local_info$url, token, conn$local_info$cluster_id,
                                   repo$url, ready[i], go), env = env)
  })
  on.exit(for (k in kids) k$kill(), add = TRUE)
  deadline <- Sys.time() + 60
  while (!all(file.exists(ready)) && Sys.time() < deadline && all(vapply(kids, function(k) k$is_alive(), TRUE))) {
    Sys.sleep(0.05)
  }
  expect_true(all(file.exists(ready)))
  file.create(go)
  for (k in kids) k$wait(120000)
  res <- lapply(kids, function(k) k$get_result())
  expect_identical(res[[1]]$hash, res[[2]]$hash)
  # Both built (the race happened), one rename won, both use the same library.
  expect_true(all(vapply(res, function(r) length(r$installed) == 2, TRUE)))
  expect_equal(sum(vapply(res, function(r) isTRUE(r$won), TRUE)), 1)
  expect_identical(c(res[[1]]$b, res[[2]]$b), c("2.0.0", "2.0.0"))
  root <- file.path(conn$local_info$state_dir, "fs", "dbfs", "tmp", "dbrxr", "libraries")
  expect_identical(list.files(root, all.files = TRUE, no.. = TRUE), res[[1]]$hash)
  expect_true(file.exists(file.path(root, res[[1]]$hash, ".dbrxr-complete")))
})
