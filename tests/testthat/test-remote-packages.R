# Remote packages: listing, missing packages, version mismatches, installing.
# The local cluster runs the same R as this process but sees only the machine's
# system libraries (never this session's), so a tiny package installed into
# temporary libraries makes the two sides differ for real.
file_env <- environment()

test_that("remote_packages lists the cluster's packages next to this session's", {
  conn <- remote_test_conn(file_env)
  pk <- remote_packages(conn)
  expect_s3_class(pk, "data.frame")
  expect_named(pk, c("package", "local_version", "remote_version", "where", "status"))
  expect_false(anyDuplicated(pk$package) > 0)
  stats_row <- pk[pk$package == "stats", ]
  expect_equal(stats_row$remote_version, as.character(packageVersion("stats")))
  expect_equal(stats_row$local_version, as.character(packageVersion("stats")))
  expect_equal(stats_row$where, "system")
  expect_equal(stats_row$status, "same")
  # A package loaded here but not on the cluster (contexts never see this
  # session's libraries).
  local_test_packages("dbxC")
  loadNamespace("dbxC")
  pk <- remote_packages(conn)
  expect_equal(pk$status[pk$package == "dbxC"], "missing remote")
  expect_equal(pk$local_version[pk$package == "dbxC"], "1.0.0")
  expect_true(is.na(pk$remote_version[pk$package == "dbxC"]))
  expect_true(is.na(pk$where[pk$package == "dbxC"]))
})

test_that("a package missing on the cluster, then installed with remote_install_packages()", {
  conn <- remote_test_conn(file_env)
  local_lib <- withr::local_tempdir()
  install_tiny_package(local_lib, "1.0.0")
  withr::local_libpaths(local_lib, action = "prefix")   # this side only
  model <- dbrxrtinypkg::dbrxrtinypkg_model(7)
  err <- expect_error(remote_score(model, data.frame(a = 1:3), conn = conn),
                      class = "dbrxr_missing_package_error")
  expect_equal(err$package, "dbrxrtinypkg")
  expect_match(paste(conditionMessage(err), collapse = " "), "remote_install_packages(\"dbrxrtinypkg\", conn = conn)",
               fixed = TRUE)
  # Same for a function that calls it.
  expect_error(remote_eval(dbrxrtinypkg::dbrxrtinypkg_model(1), conn),
               class = "dbrxr_missing_package_error")

  repo <- withr::local_tempdir()
  install_tiny_package(NULL, "1.0.0", repo = repo)
  inst <- expect_output(suppressMessages(
    remote_install_packages("dbrxrtinypkg", conn, repos = paste0("file://", repo), progress = TRUE)),
    "DONE (dbrxrtinypkg)", fixed = TRUE)
  expect_s3_class(inst, "dbx_library")
  expect_equal(inst$packages$version[inst$packages$package == "dbrxrtinypkg"], "1.0.0")
  expect_identical(remote_score(model, data.frame(a = 1:3), conn = conn), c(7, 7, 7))
  pk <- remote_packages(conn)
  expect_equal(pk$where[pk$package == "dbrxrtinypkg"], inst$hash)
  expect_equal(pk$remote_version[pk$package == "dbrxrtinypkg"], "1.0.0")
})

test_that("a different version on the cluster is a warning naming both versions", {
  conn <- remote_test_conn(file_env)
  model <- local_version_mismatch(conn, "dbrxrtinyver")
  w <- expect_warning(res <- remote_score(model, 1:2, conn = conn),
                      class = "dbrxr_version_warning")
  expect_equal(res, c(3, 3))
  expect_equal(w$package, "dbrxrtinyver")
  expect_equal(w$local_version, "1.0.0")
  expect_equal(w$remote_version, "2.0.0")
  expect_match(conditionMessage(w), "1.0.0.*2.0.0")
})

test_that("remote_install_packages checks its arguments and reports failures", {
  conn <- remote_test_conn(file_env)
  expect_error(remote_install_packages(character(), conn), class = "dbrxr_input_error")
  expect_error(remote_install_packages("x", conn, repos = NA_character_),
               class = "dbrxr_input_error")
  repo <- withr::local_tempdir()
  install_tiny_package(NULL, "1.0.0", repo = repo)
  expect_error(remote_install_packages("x", conn, timeout = -1), class = "dbrxr_input_error")
  expect_error(remote_install_packages("no/such.tar.gz", conn), class = "dbrxr_input_error")
  # The connection's library came from a repository that is gone by now: a
  # warning says so, and the other repositories are used.
  expect_warning(err <- expect_error(
    remote_install_packages("dbrxrNoSuchPkg", conn, repos = paste0("file://", repo)),
    class = "dbrxr_remote_error"), "could not be read", class = "dbrxr_remote_warning")
  expect_equal(err$package, "dbrxrNoSuchPkg")
  expect_match(conditionMessage(err), "none of the repositories|could not reach the repository")
})
