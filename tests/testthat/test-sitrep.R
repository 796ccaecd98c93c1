# dbx_sitrep() on real local clusters: everything ok on a healthy one, and each
# failing case the local cluster can stand for gives `fail` with its fix while
# the other checks go on.
# Clusters of their own: each test sets what the report checks (access mode,
# staging, faults, a Python without rpy2) or compares what the cluster stores
# before and after.

checks <- c("credentials", "cluster", "access mode", "python", "r", "staging", "paths", "spark",
            "mlflow", "serving", "grants")

status_of <- function(r) stats::setNames(r$status, r$check)

# Files under the local cluster's DBFS and Volumes (what staging leaves behind).
stored_files <- function(conn) {
  root <- conn$local_info$state_dir
  sort(c(list.files(file.path(root, "dbfs"), recursive = TRUE, all.files = TRUE),
         list.files(file.path(root, "Volumes"), recursive = TRUE, all.files = TRUE)))
}

# Whether the cluster's Python can import a module (MLflow is optional there).
python_has <- function(module) {
  identical(suppressWarnings(system2(local_python(), c("-c", shQuote(paste("import", module))),
                                     stdout = FALSE, stderr = FALSE)), 0L)
}

local_option_available <- function(name) {
  name %in% dbrxr:::unwrap(dbrxr:::rust_local_option_table())$name
}

test_that("on the local cluster every check is ok, and the report leaves nothing behind", {
  conn <- dbrxr::local_test_cluster()
  before <- stored_files(conn)
  # The first report starts Spark's JVM in the context (slow on a busy machine).
  first <- dbx_sitrep(conn, schema = "main.default", timeout = 180)
  expect_s3_class(first, "dbx_sitrep")
  expect_s3_class(first, "data.frame")
  expect_named(first, c("check", "status", "detail", "fix", "seconds"))
  expect_identical(first$check, checks)
  want <- rep("ok", length(checks))
  if (!python_has("mlflow")) want[checks == "mlflow"] <- "warn"
  expect_identical(unname(status_of(first)), want, info = paste(format(first), collapse = "\n"))
  expect_match(first$detail[first$check == "credentials"], "local@dbrxr.invalid", fixed = TRUE)
  expect_match(first$detail[first$check == "access mode"], "SINGLE_USER", fixed = TRUE)
  expect_match(first$detail[first$check == "r"], as.character(getRversion()), fixed = TRUE)
  expect_match(first$detail[first$check == "grants"], "you own it", fixed = TRUE)
  expect_true(all(is.na(first$fix[first$status == "ok"])))
  # Once the cluster is up (Spark started), a report takes under 5 s (0.7-1.0 s
  # measured on this 2-core machine under a load average of 4.5).
  t0 <- Sys.time()
  again <- dbx_sitrep(conn, timeout = 60)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  expect_true(all(again$status[again$check != "grants"] %in% c("ok", if (!python_has("mlflow")) "warn")))
  expect_identical(again$status[again$check == "grants"], "skip")
  expect_lt(elapsed, 5)
  expect_identical(stored_files(conn), before)
  out <- paste(format(again), collapse = "\n")
  expect_match(out, "Credentials", fixed = TRUE)
  expect_match(out, "ok,", fixed = TRUE)
})

test_that("a context Python without rpy2 fails the python check with its fix; the others go on", {
  skip_if(!nzchar(Sys.which("python3")), "no python3 on PATH")
  nopy <- withr::local_tempfile(fileext = ".sh")
  writeLines(c("#!/bin/sh", "exec python3 -S \"$@\""), nopy)  # -S: no site-packages, no rpy2
  Sys.chmod(nopy, "0755")
  conn <- suppressWarnings(dbrxr::local_test_cluster(python = nopy))
  r <- dbx_sitrep(conn, timeout = 60)
  s <- status_of(r)
  expect_identical(s[["python"]], "fail")
  expect_match(r$detail[r$check == "python"], "rpy2", fixed = TRUE)
  expect_match(r$fix[r$check == "python"], "install_rpy2 = TRUE", fixed = TRUE)
  expect_match(r$fix[r$check == "python"], "cluster library", fixed = TRUE)
  expect_identical(s[["r"]], "skip")
  expect_identical(s[["spark"]], "fail")       # no PySpark in that Python either
  expect_identical(s[["mlflow"]], "warn")      # nor MLflow: only model logging needs it
  expect_identical(unname(s[c("credentials", "cluster", "access mode", "staging")]), rep("ok", 4))
})

test_that("a terminated cluster is reported, not started, and the context checks skip", {
  conn <- dbrxr::local_test_cluster(cluster_state = "TERMINATED")
  r <- dbx_sitrep(conn, timeout = 30)
  s <- status_of(r)
  expect_identical(s[["cluster"]], "warn")
  expect_match(r$fix[r$check == "cluster"], "starts it on first use", fixed = TRUE)
  expect_identical(unname(s[c("python", "r", "spark", "mlflow")]), rep("skip", 4))
  expect_identical(unname(s[c("credentials", "access mode", "staging")]), rep("ok", 3))
  expect_identical(dbx_cluster_status(conn)$state, "TERMINATED")
})

test_that("rejected credentials fail with the fix, and the token is never shown", {
  conn <- dbrxr::local_test_cluster()
  bad <- dbx_connect(host = conn$local_info$url, token = "dapi-wrong-token-123",
                     cluster_id = conn$local_info$cluster_id)
  withr::defer(dbx_disconnect(bad))
  r <- dbx_sitrep(bad, timeout = 20)
  s <- status_of(r)
  expect_identical(s[["credentials"]], "fail")
  expect_match(r$fix[r$check == "credentials"], "DATABRICKS_TOKEN", fixed = TRUE)
  expect_identical(r$check, checks)
  expect_true(all(s[c("cluster", "python", "staging", "spark", "mlflow")] == "fail"))
  expect_identical(unname(s[c("access mode", "r")]), c("skip", "skip"))
  expect_false(any(grepl("dapi-wrong-token-123", c(format(r), unlist(r)), fixed = TRUE)))
})

test_that("no check can hang the report: each one ends at its time limit", {
  conn <- dbrxr::local_test_cluster()
  local_faults(conn, latency_ms = 4000)   # every API request takes 4 s
  withr::defer(local_faults(conn))
  t0 <- Sys.time()
  r <- dbx_sitrep(conn, schema = "main.default", timeout = 1)
  elapsed <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
  expect_true(all(r$status %in% c("fail", "skip")))
  expect_match(r$detail[r$check == "credentials"], "time limit", fixed = TRUE)
  expect_true(all(r$seconds < 12))   # 1 s, plus the staging probe's clean-up
  expect_lt(elapsed, 40)
})

test_that("another access mode fails with the fix", {
  skip_if_not(local_option_available("data_security_mode"),
              "the local cluster's data_security_mode option has not landed")
  conn <- dbrxr::local_test_cluster(data_security_mode = "USER_ISOLATION")
  r <- dbx_sitrep(conn, timeout = 60)
  s <- status_of(r)
  expect_identical(s[["access mode"]], "fail")
  expect_match(r$detail[r$check == "access mode"], "USER_ISOLATION is Standard (shared)", fixed = TRUE)
  expect_match(r$fix[r$check == "access mode"], "Dedicated (single user)", fixed = TRUE)
  expect_identical(s[["credentials"]], "ok")
  expect_identical(s[["cluster"]], "ok")
})

test_that("a read-only staging location fails with the fix, and leaves nothing behind", {
  skip_if_not(local_option_available("readonly_staging"),
              "the local cluster's readonly_staging option has not landed")
  conn <- dbrxr::local_test_cluster(readonly_staging = "/tmp/dbrxr")
  before <- stored_files(conn)
  r <- dbx_sitrep(conn, timeout = 60)
  s <- status_of(r)
  expect_identical(s[["staging"]], "fail")
  expect_match(r$detail[r$check == "staging"], "403", fixed = TRUE)
  expect_match(r$fix[r$check == "staging"], "staging =", fixed = TRUE)
  expect_identical(unname(s[c("credentials", "cluster", "access mode", "python", "r")]), rep("ok", 5))
  expect_identical(stored_files(conn), before)
})

test_that("grants: owners, groups and missing privileges", {
  perms <- function(...) list(privilege_assignments = list(...))
  assign <- function(principal, ...) {
    list(principal = principal, privileges = lapply(c(...), function(p) list(privilege = p)))
  }
  base <- list(user = "ana@example.com", groups = c("users", "data-science"),
               catalog = list(owner = "admins"), schema = list(owner = "admins"))
  # Everything through a group, USE CATALOG inherited into the schema's list.
  ok <- c(base, list(
    catalog_permissions = perms(assign("data-science", "USE_CATALOG")),
    schema_permissions = perms(assign("data-science", "USE_SCHEMA", "SELECT", "CREATE_TABLE", "CREATE_MODEL"))))
  row <- dbrxr:::grants_row("main.crm", ok)
  expect_identical(row$status, "ok")
  expect_match(row$detail, "register models: yes", fixed = TRUE)
  # No CREATE MODEL, and privileges of somebody else do not count.
  partial <- ok
  partial$schema_permissions <- perms(assign("ana@example.com", "USE_SCHEMA", "SELECT", "CREATE_TABLE"),
                                      assign("bob@example.com", "CREATE_MODEL"))
  row <- dbrxr:::grants_row("main.crm", partial)
  expect_identical(row$status, "fail")
  expect_match(row$detail, "create tables: yes, register models: no; missing CREATE_MODEL", fixed = TRUE)
  expect_match(row$fix, "GRANT CREATE MODEL ON SCHEMA `main`.`crm` TO `ana@example.com`;", fixed = TRUE)
  # ALL_PRIVILEGES on the schema, but no USE CATALOG: nothing works.
  nouse <- c(base, list(catalog_permissions = perms(),
                        schema_permissions = perms(assign("account users", "ALL_PRIVILEGES"))))
  row <- dbrxr:::grants_row("main.crm", nouse)
  expect_identical(row$status, "fail")
  expect_match(row$fix, "GRANT USE CATALOG ON CATALOG `main` TO `ana@example.com`;", fixed = TRUE)
  # The owner of the schema needs only USE CATALOG.
  owner <- c(base[c("user", "groups", "catalog")],
             list(schema = list(owner = "ana@example.com"),
                  catalog_permissions = perms(assign("account users", "USE_CATALOG")),
                  schema_permissions = perms()))
  expect_identical(dbrxr:::grants_row("main.crm", owner)$status, "ok")
})

test_that("bad arguments are input errors before any network call", {
  conn <- dbx_connect(host = "https://example.invalid", token = "t", cluster_id = "c")
  withr::defer(dbx_disconnect(conn))
  expect_error(dbx_sitrep("conn"), class = "dbrxr_input_error")
  expect_error(dbx_sitrep(conn, schema = "main"), class = "dbrxr_input_error")
  expect_error(dbx_sitrep(conn, schema = "main.crm.t"), class = "dbrxr_input_error")
  expect_error(dbx_sitrep(conn, schema = c("a.b", "c.d")), class = "dbrxr_input_error")
  expect_error(dbx_sitrep(conn, timeout = -1), class = "dbrxr_input_error")
})
