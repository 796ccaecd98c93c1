# Shared by the test-remote-* files and others: the run's shared rpy2 cluster
# (helper-shared-cluster.R), or with `own = TRUE` one local cluster for the
# file (started on first use, stopped when the file ends), for files that
# change what every later call on a connection does (its remote_library()).
remote_test_conn <- function(file_env, own = FALSE) {
  if (!own) return(shared_cluster(.env = parent.frame()))
  skip_if_no_rpy2()
  conn <- file_env$.remote_conn
  if (is.null(conn) || isTRUE(conn$closed)) {
    conn <- local_cluster(python = local_python())
    provide_dbrxr_on_cluster(conn)
    file_env$.remote_conn <- conn
    withr::defer(dbx_disconnect(conn), envir = file_env)
  }
  conn
}

# Data with factors, NA rows and Dates.
scoring_data <- function(n = 400, seed = 1) {
  set.seed(seed)
  d <- data.frame(x1 = rnorm(n), x2 = runif(n),
                  grp = factor(sample(c("a", "b", "c"), n, replace = TRUE)),
                  day = as.Date("2025-01-01") + sample(0:364, n, replace = TRUE))
  d$y <- 2 * d$x1 - d$x2 + as.integer(d$grp) + rnorm(n)
  d$cls <- factor(ifelse(d$y > 2, "high", "low"))
  d
}

# Bytes the local cluster received (all routes).
bytes_in <- function(conn) dbrxr:::local_stats(conn)$bytes_in

# Install a tiny package `name` (version `version`) into `lib`; it provides a
# model class "<name>_model" with a predict() method.
install_tiny_package <- function(lib, version = "1.0.0", name = "dbrxrtinypkg", repo = NULL) {
  src <- file.path(tempfile("pkgsrc"), name)
  dir.create(file.path(src, "R"), recursive = TRUE)
  writeLines(c(paste("Package:", name), paste("Version:", version),
               "Title: Tiny Test Package", "Description: For dbrxr tests.",
               "License: MIT", "Authors@R: person('a', 'b', role = c('aut', 'cre'), email = 'a@b.c')",
               "Encoding: UTF-8"), file.path(src, "DESCRIPTION"))
  writeLines(c(sprintf("export(%s_model)", name),
               sprintf("S3method(predict, %s_model)", name)), file.path(src, "NAMESPACE"))
  writeLines(c(sprintf("%s_model <- function(k) structure(list(k = k), class = \"%s_model\")",
                       name, name),
               sprintf("predict.%s_model <- function(object, newdata, ...) rep(object$k, NROW(newdata))",
                       name)), file.path(src, "R", "model.R"))
  if (!is.null(lib)) dir.create(lib, recursive = TRUE, showWarnings = FALSE)
  if (!is.null(repo)) {
    contrib <- file.path(repo, "src", "contrib")
    dir.create(contrib, recursive = TRUE, showWarnings = FALSE)
    old <- setwd(contrib)
    on.exit(setwd(old))
    system2(file.path(R.home("bin"), "R"), c("CMD", "build", "--no-manual", shQuote(src)),
            stdout = FALSE, stderr = FALSE)
    tools::write_PACKAGES(contrib, type = "source")
    return(invisible(repo))
  }
  rc <- system2(file.path(R.home("bin"), "R"),
                c("CMD", "INSTALL", paste0("--library=", shQuote(lib)), shQuote(src)),
                stdout = FALSE, stderr = FALSE)
  stopifnot(rc == 0)
  invisible(lib)
}

# A tiny package `name` installed here at 1.0.0 and, in a library put first
# in the cluster's .libPaths(), at 2.0.0; returns a model of its class.
local_version_mismatch <- function(conn, name, .env = parent.frame()) {
  local_lib <- withr::local_tempdir(.local_envir = .env)
  remote_lib <- withr::local_tempdir(.local_envir = .env)
  install_tiny_package(local_lib, "1.0.0", name = name)
  install_tiny_package(remote_lib, "2.0.0", name = name)
  withr::local_libpaths(local_lib, action = "prefix", .local_envir = .env)
  remote_eval(invisible(.libPaths(c(remote_lib, .libPaths()))), conn)
  getExportedValue(name, paste0(name, "_model"))(3)
}
