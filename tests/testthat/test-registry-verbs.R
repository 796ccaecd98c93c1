# Promoting models with the registry verbs: aliases set, moved and deleted,
# a model's versions, dbx_models(name =), and classed errors, on the run's
# shared Spark cluster's registry (schema main.ml). A job that follows an
# alias from run to run: test-slow-registry-jobs.R.

test_that("bad registry input is refused before any request", {
  conn <- shared_cluster()
  before <- local_stats(conn)$routes
  expect_error(dbx_model_alias("nothreeparts", "champion", 1, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "1st", 1, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "champion", 0, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "champion", 1.5, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "champion", "v2", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "champion", 2^31, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias("main.s.m", "champion", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_alias_delete("main.s.m", NA_character_, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_model_versions("main.s", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_models(conn, name = "a.b.c.d"), class = "dbrxr_input_error")
  after <- local_stats(conn)$routes
  after[["GET /_local/stats"]] <- before[["GET /_local/stats"]] <- NULL
  expect_identical(after, before)
})

test_that("dbx_model_alias() promotes and rolls back; scoring by alias follows; versions and models show it", {
  conn <- mlflow_conn()
  name <- "main.ml.reg_verbs"
  ex <- head(mtcars[c("wt", "hp")])
  fit1 <- lm(mpg ~ wt, data = mtcars)
  fit2 <- lm(mpg ~ wt + hp, data = mtcars)
  v1 <- remote_log_model(fit1, name, input_example = ex, alias = "champion", conn = conn)
  v2 <- remote_log_model(fit2, name, input_example = ex, conn = conn)
  uri <- sprintf("models:/%s@champion", name)
  expect_identical(remote_score(uri, mtcars, conn = conn), predict(fit1, mtcars))

  a <- dbx_model_alias(name, "champion", v2$version, conn = conn)
  expect_s3_class(a, "dbx_model_alias")
  expect_identical(c(a$version, a$previous), c(v2$version, v1$version))
  expect_output(print(a), sprintf("%s@champion -> version %d (was version %d)", name, v2$version, v1$version),
                fixed = TRUE)
  expect_identical(remote_score(uri, mtcars, conn = conn), predict(fit2, mtcars))

  # Rolled back with the version as text; a second alias on the new version.
  expect_identical(dbx_model_alias(name, "champion", as.character(v1$version), conn = conn)$version, v1$version)
  expect_true(is.na(dbx_model_alias(name, "challenger", v2$version, conn = conn)$previous))
  expect_identical(remote_score(uri, mtcars, conn = conn), predict(fit1, mtcars))

  vs <- dbx_model_versions(name, conn = conn)
  expect_identical(names(vs), c("version", "aliases", "run_id", "created", "status", "signature"))
  expect_identical(vs$version, c(v1$version, v2$version))
  expect_identical(vs$aliases, c("champion", "challenger"))
  expect_identical(vs$status, c("READY", "READY"))
  expect_identical(vs$run_id, c(v1$run_id, v2$run_id))
  expect_s3_class(vs$created, "POSIXct")
  expect_identical(vs$signature, rep("wt: double, hp: double -> double", 2))

  m <- dbx_models(conn, name = name)
  expect_s3_class(m, "dbx_models")
  expect_identical(unique(m$name), name)
  out <- capture.output(print(m))
  # Aliases first, then the versions.
  expect_identical(out[1:2], c("<dbx_models> 1 model, 2 versions", name))
  expect_match(out[3], sprintf("^  @champion +-> version %d \\(READY, ", v1$version))
  expect_match(out[4], sprintf("^  @challenger +-> version %d \\(READY, ", v2$version))
  expect_identical(out[5], sprintf("  versions: %d, %d", v1$version, v2$version))
  expect_true(name %in% dbx_models(conn, name = "main.ml")$name)
  expect_false(any(startsWith(dbx_models(conn, name = "main.other")$name, "main.ml.")))

  expect_identical(dbx_model_alias_delete(name, "challenger", conn = conn), v2$version)
  expect_identical(dbx_model_versions(name, conn = conn)$aliases, c("champion", ""))
  e <- expect_error(remote_score(sprintf("models:/%s@challenger", name), mtcars, conn = conn),
                    class = "dbrxr_model_alias_not_found_error")
  expect_match(conditionMessage(e), "dbx_model_alias(\"main.ml.reg_verbs\", \"challenger\", <version>)",
               fixed = TRUE)
})

test_that("a missing model, version or alias, and a refusal, are their own classes", {
  conn <- mlflow_conn()
  name <- "main.ml.reg_errors"
  remote_log_model(lm(mpg ~ wt, data = mtcars), name, input_example = head(mtcars["wt"]), conn = conn)
  e <- expect_error(dbx_model_alias("main.ml.reg_nosuch", "champion", 1, conn = conn),
                    class = "dbrxr_model_not_found_error")
  expect_s3_class(e, "dbrxr_not_found_error")
  expect_identical(e$model, "main.ml.reg_nosuch")
  e <- expect_error(dbx_model_alias(name, "champion", 99, conn = conn),
                    class = "dbrxr_model_version_not_found_error")
  expect_identical(e$version, "99")
  expect_error(dbx_model_alias_delete(name, "nosuch", conn = conn), class = "dbrxr_model_alias_not_found_error")
  expect_error(dbx_model_versions("main.ml.reg_nosuch", conn = conn), class = "dbrxr_model_not_found_error")
  expect_error(dbx_models(conn, name = "main.ml.reg_nosuch"), class = "dbrxr_model_not_found_error")
  # URIs resolved for scoring say the same.
  expect_error(remote_score(sprintf("models:/%s/7", name), mtcars, conn = conn),
               class = "dbrxr_model_version_not_found_error")
  expect_error(remote_score("models:/main.ml.reg_nosuch@champion", mtcars, conn = conn),
               class = "dbrxr_model_not_found_error")
  # The registry's refusal (its PERMISSION_DENIED, as the mlflow target
  # reports it) is a dbrxr_model_permission_error.
  e <- expect_error(dbrxr:::mlflow_errors(list(class = "permission", message = "denied", model = name,
                                               error_code = "PERMISSION_DENIED"), NULL),
                    class = "dbrxr_model_permission_error")
  expect_s3_class(e, "dbrxr_auth_error")
  # A table job resolving its models:/ URI as it runs reports the registry's
  # failures as such (they were a dbrxr_table_not_found_error, or an
  # internal error for a registry that could not be read).
  expect_error(dbrxr:::spark_error(list(class = "alias_not_found", message = "no alias", model = name,
                                        alias = "champion"), list(table = "main.s.t"), NULL),
               class = "dbrxr_model_alias_not_found_error")
  expect_error(dbrxr:::spark_error(list(class = "mlflow", message = "Reading Databricks credential configuration failed"),
                                   list(table = "main.s.t"), NULL),
               class = "dbrxr_mlflow_error")
})
