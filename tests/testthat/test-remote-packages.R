# Remote packages: listing, missing packages, version mismatches, installing.
# The local cluster runs the same R and library as this process, so a tiny
# package installed into temporary libraries makes the two sides differ for real.
file_env <- environment()

test_that("remote_packages lists the cluster's packages and versions", {
  conn <- remote_test_conn(file_env)
  pk <- remote_packages(conn)
  expect_s3_class(pk, "data.frame")
  expect_named(pk, c("package", "version", "libpath"))
  expect_equal(pk$version[pk$package == "stats"][1], as.character(packageVersion("stats")))
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
  expect_match(paste(conditionMessage(err), collapse = " "), "remote_install_packages")
  # Same for a function that calls it.
  expect_error(remote_eval(dbrxrtinypkg::dbrxrtinypkg_model(1), conn),
               class = "dbrxr_missing_package_error")

  repo <- withr::local_tempdir()
  install_tiny_package(NULL, "1.0.0", repo = repo)
  remote_lib <- withr::local_tempdir()
  inst <- expect_output(remote_install_packages("dbrxrtinypkg", conn,
                                                repos = paste0("file://", repo),
                                                lib = remote_lib, type = "source"))
  expect_equal(inst$version, "1.0.0")
  expect_identical(remote_score(model, data.frame(a = 1:3), conn = conn), c(7, 7, 7))
  expect_true("dbrxrtinypkg" %in% remote_packages(conn)$package)
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
  err <- expect_error(suppressWarnings(
    remote_install_packages("dbrxrNoSuchPkg", conn, repos = paste0("file://", repo),
                            lib = withr::local_tempdir(), type = "source")),
    class = "dbrxr_remote_error")
  expect_equal(err$package, "dbrxrNoSuchPkg")
})
