# A user's package that imports dbrxr, with a testthat suite that starts a
# local cluster and puts the package itself on it (remote_library(local =)),
# passes R CMD check: the journey of vignette("testing").

# Writes the package `dbxScore` into `dir` (as vignette("testing") shows it).
write_scoring_package <- function(dir) {
  pkg <- file.path(dir, "dbxScore")
  dir.create(file.path(pkg, "R"), recursive = TRUE)
  dir.create(file.path(pkg, "tests", "testthat"), recursive = TRUE)
  writeLines(c("Package: dbxScore", "Version: 0.3.1", "Title: Scores Cars",
               "Description: Scores fuel use, locally and on Databricks.", "License: GPL-3",
               "Authors@R: person('A', 'B', role = c('aut', 'cre'), email = 'a@b.c')",
               "Imports: dbrxr, stats", "Suggests: testthat (>= 3.0.0)",
               "Config/testthat/edition: 3", "Encoding: UTF-8"),
             file.path(pkg, "DESCRIPTION"))
  writeLines(c("export(fit_mpg)", "export(score_mpg)", "importFrom(dbrxr, remote_eval)"),
             file.path(pkg, "NAMESPACE"))
  writeLines(c(
    "fit_mpg <- function(data) stats::lm(mpg ~ wt + hp, data = data)",
    "score_mpg <- function(model, newdata) round(unname(stats::predict(model, newdata)), 2)"),
    file.path(pkg, "R", "score.R"))
  dir.create(file.path(pkg, "man"))
  writeLines(c("\\name{score_mpg}", "\\alias{score_mpg}", "\\alias{fit_mpg}", "\\title{Fuel use}",
               "\\usage{", "fit_mpg(data)", "score_mpg(model, newdata)", "}",
               "\\arguments{", "\\item{data, newdata}{Cars.}", "\\item{model}{From fit_mpg().}", "}",
               "\\value{A model; predictions.}", "\\description{Fits and scores fuel use.}",
               "\\examples{", "score_mpg(fit_mpg(mtcars), mtcars[1:2, ])", "}"),
             file.path(pkg, "man", "score_mpg.Rd"))
  writeLines(c(
    "library(testthat)", "library(dbxScore)", "test_check(\"dbxScore\")"),
    file.path(pkg, "tests", "testthat.R"))
  writeLines(c(
    "# The package's own sources, to install on the test cluster: the package",
    "# root when testing from source, the check's copy under R CMD check.",
    "package_source <- function() {",
    "  dirs <- c(test_path(\"..\", \"..\"), test_path(\"..\", \"..\", \"00_pkg_src\", \"dbxScore\"))",
    "  dirs[file.exists(file.path(dirs, \"DESCRIPTION\"))][1]",
    "}",
    "use_own_package <- function(conn) dbrxr::remote_library(local = package_source(), conn = conn)"),
    file.path(pkg, "tests", "testthat", "setup.R"))
  writeLines(c(
    "test_that(\"scoring on the cluster gives the local predictions\", {",
    "  conn <- dbrxr::local_test_cluster()",
    "  use_own_package(conn)",
    "  model <- fit_mpg(mtcars)",
    "  expect_equal(remote_eval(score_mpg(model, mtcars[1:5, ]), conn), score_mpg(model, mtcars[1:5, ]))",
    "  where <- remote_eval(find.package(\"dbxScore\"), conn)",
    "  cat(\"\\ndbxScore on the cluster:\", remote_eval(as.character(utils::packageVersion(\"dbxScore\")), conn),",
    "      \"from\", where, \"\\n\")",
    "  expect_match(where, \"/libraries/\")",
    "})"),
    file.path(pkg, "tests", "testthat", "test-score.R"))
  pkg
}

test_that("a package importing dbrxr, tested on a local cluster, passes R CMD check with its own code on the cluster", {
  skip_if_not_slow()
  skip_on_cran()
  skip_if_no_local_cluster()
  dir <- withr::local_tempdir()
  pkg <- write_scoring_package(dir)
  r <- file.path(R.home("bin"), "R")
  withr::local_dir(dir)
  env <- c(R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
           `_R_CHECK_FORCE_SUGGESTS_` = "false")
  withr::local_envvar(env)
  built <- system2(r, c("CMD", "build", "--no-manual", "dbxScore"), stdout = TRUE, stderr = TRUE)
  expect_true(file.exists("dbxScore_0.3.1.tar.gz"), label = paste(built, collapse = "\n"))
  out <- suppressWarnings(system2(r, c("CMD", "check", "--no-manual", "dbxScore_0.3.1.tar.gz"),
                                  stdout = TRUE, stderr = TRUE))
  log <- paste(out, collapse = "\n")
  expect_null(attr(out, "status"), label = log)
  expect_match(log, "Status: (OK|[0-9]+ NOTEs?)\n?", label = log)
  tests <- readLines(file.path("dbxScore.Rcheck", "tests", "testthat.Rout"))
  used <- grep("dbxScore on the cluster:", tests, value = TRUE)
  expect_length(used, 1)
  expect_match(used, "dbxScore on the cluster: 0.3.1 from .*/libraries/[0-9a-f]+/dbxScore")
  expect_true(any(grepl("FAIL 0 .* PASS 2", tests)), label = paste(tests, collapse = "\n"))
})
