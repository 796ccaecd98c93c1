# Users' own packages in their tests: a model fitted where the environment
# chains to a package's namespace (as in that package's testthat suite) needs
# only the packages it uses on the cluster, never that package just for the
# chain, and never dbrxr.

test_that("a namespace reached only as a formula environment's parent is not required", {
  pkg_env <- new.env(parent = asNamespace("withr"))  # a package's test environment
  fit <- local(lm(mpg ~ wt, data = mtcars), envir = pkg_env)
  info <- dbrxr:::inspect_object(fit, "model")
  expect_false("withr" %in% info$namespaces)
  expect_true("withr" %in% info$chained)
  expect_false("withr" %in% dbrxr:::needed_packages(info$namespaces))
  # A function of the package called by the formula is needed.
  fit2 <- local(lm(mpg ~ wt + with_seed(1, hp), data = mtcars), envir = pkg_env)
  expect_identical(dbrxr:::formula_packages(fit2), "withr")
  # A closure made by a package function keeps needing its namespace.
  f <- local(function(x) x, envir = new.env(parent = asNamespace("withr")))
  expect_true("withr" %in% dbrxr:::inspect_object(list(f = f), "model")$namespaces)
  expect_false("dbrxr" %in% dbrxr:::needed_packages("dbrxr", "stats"))
})

test_that("a model fitted in a test chained to dbrxr's namespace scores without dbrxr on the cluster", {
  conn <- dbrxr::local_test_cluster()  # no dbrxr in the cluster's library
  env <- new.env(parent = asNamespace("dbrxr"))
  fit <- local(lm(mpg ~ wt + hp, data = mtcars), envir = env)
  expect_identical(remote_score(fit, mtcars, conn = conn), predict(fit, mtcars))
})
