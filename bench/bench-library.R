# remote_library() on a local cluster: building a 3-package library (dbxA,
# its dependency dbxB, dbxC, from the tests' CRAN-like repository) against
# reusing it (same manifest, same context), and reusing it after a cluster
# restart (first call with the new context, which includes its bootstrap).

bench_library <- function(builds = 3L, reuses = 10L) {
  `%||%` <- function(x, y) if (is.null(x)) y else x
  helper <- new.env()
  helper$`%||%` <- `%||%`
  sys.source(file.path("tests", "testthat", "helper-library.R"), envir = helper)
  repo <- helper$library_test_repo(file.path("tests", "testthat", "fixtures", "library"))
  conn <- local_cluster()
  on.exit(dbx_disconnect(conn), add = TRUE)
  pkgs <- c("dbxA", "dbxC")
  dbrxr:::remote_eval(1, conn)  # context up
  elapsed <- function(f) system.time(f())[["elapsed"]]
  build <- vapply(seq_len(builds), function(i) {
    elapsed(function() {
      lib <- remote_library(pkgs, repos = repo$url, conn = conn, rebuild = i > 1)
      stopifnot(length(lib$installed) == 3L)
    })
  }, numeric(1))
  reuse <- vapply(seq_len(reuses), function(i) {
    elapsed(function() stopifnot(!length(remote_library(pkgs, repos = repo$url, conn = conn)$installed)))
  }, numeric(1))
  restart <- vapply(seq_len(3L), function(i) {
    dbrxr:::local_restart(conn)
    elapsed(function() stopifnot(!length(remote_library(pkgs, repos = repo$url, conn = conn)$installed)))
  }, numeric(1))
  s <- function(x) sprintf("%.2f s", stats::median(x))
  list(build_vs_reuse = data.frame(
    step = c("first build (3 packages installed)",
             "reuse, same manifest (nothing installed)",
             "reuse after a cluster restart (incl. new context)"),
    median = c(s(build), s(reuse), s(restart)),
    runs = c(builds, reuses, 3L),
    `vs build` = c("1x", sprintf("%.0fx faster", stats::median(build) / stats::median(reuse)),
                   sprintf("%.0fx faster", stats::median(build) / stats::median(restart))),
    check.names = FALSE))
}
