# remote_library(local = <source directory>) with a package of the user's own
# that imports dbrxr (a cluster-side dbrxr stands in), and what it says when
# the cluster cannot reach a repository.
# A cluster of its own (remote_test_conn(own = TRUE)): remote_library() sets what
# every later call on the connection puts first on .libPaths().
file_env <- environment()

# A package source directory `dbxOwn` importing dbrxr and dbxB (of the test
# repository): what a package maintainer's tests ship.
own_package_dir <- function(.env = parent.frame()) {
  dir <- file.path(withr::local_tempdir(.local_envir = .env), "dbxOwn")
  dir.create(file.path(dir, "R"), recursive = TRUE)
  writeLines(c("Package: dbxOwn", "Version: 0.2.0", "Title: Own Package",
               "Description: Scores with dbxB.", "License: MIT",
               "Authors@R: person('A', 'B', role = c('aut', 'cre'), email = 'a@b.c')",
               "Imports: dbrxr, dbxB", "Encoding: UTF-8"),
             file.path(dir, "DESCRIPTION"))
  writeLines(c("export(own_score)", "importFrom(dbrxr, remote_eval)"), file.path(dir, "NAMESPACE"))
  writeLines("own_score <- function(x) paste('dbxOwn', x, utils::packageVersion('dbxB'))",
             file.path(dir, "R", "score.R"))
  dir
}

test_that("remote_library(local = <directory>) builds the package; its dbrxr dependency is satisfied on the cluster", {
  conn <- remote_test_conn(file_env, own = TRUE)
  repo <- library_test_repo()
  lib <- remote_library(local = own_package_dir(), repos = repo$url, conn = conn)
  p <- lib$packages
  expect_setequal(p$package, c("dbrxr", "dbxB", "dbxOwn"))
  expect_match(p$source[p$package == "dbrxr"], "^local:")
  expect_equal(p$version[p$package == "dbrxr"], as.character(packageVersion("dbrxr")))
  expect_identical(remote_eval(dbxOwn::own_score(1), conn), "dbxOwn 1 2.0.0")
  # The cluster's dbrxr is the stand-in: its functions say where they run.
  msg <- remote_eval(tryCatch(dbrxr::remote_eval(1), error = conditionMessage), conn)
  expect_match(msg, "runs in your R session, not on the cluster", fixed = TRUE)
  # The same directory again: the same library, nothing installed.
  again <- remote_library(local = own_package_dir(), repos = repo$url, conn = conn)
  expect_identical(again$hash, lib$hash)
  expect_length(again$installed, 0)
})

test_that("a directory that is no package is an input error before any network call", {
  expect_error(remote_library(local = withr::local_tempdir()), class = "dbrxr_input_error")
})

test_that("an unreachable repository is named as such, with the local cluster's way out", {
  conn <- remote_test_conn(file_env, own = TRUE)
  err <- expect_error(suppressWarnings(
    remote_library("dbxA", repos = "http://127.0.0.1:9/cran", conn = conn)),
    class = "dbrxr_remote_error")
  expect_match(conditionMessage(err), "could not reach the repository http://127.0.0.1:9/cran", fixed = TRUE)
  expect_no_match(conditionMessage(err), "none of the repositories", fixed = TRUE)
  expect_match(conditionMessage(err), "file://", fixed = TRUE)
  expect_match(conditionMessage(err), "local =", fixed = TRUE)
})
