# Issue 35's platform contract: the shipped cluster-side code (inst/python,
# inst/remote) runs the same code path on Databricks and on the local cluster.
# Only inst/python/dbrxr_platform.py may know where it runs; everything else
# asks it. A branch on "am I local?" anywhere else is code that only one side
# ever runs, so a local test would prove nothing about the other.

shipped_files <- function() {
  # The installed package's copy: what a cluster actually receives.
  dirs <- c(system.file("python", package = "dbrxr"), system.file("remote", package = "dbrxr"))
  files <- list.files(dirs, pattern = "\\.(py|R)$", full.names = TRUE)
  files[basename(files) != "dbrxr_platform.py"]
}

# What counts as asking "am I on the local cluster?".
local_branch_patterns <- c(
  "reads a DBRXR_LOCAL_* variable" = "DBRXR_LOCAL_",
  "inspects __main__" = "modules(\\[|\\.get\\()[\"']__main__|import __main__",
  "imports or calls the local worker" = "dbrxr_local_worker|worker\\.py|dbrxr_local_platform",
  "uses the worker's private names" = "_local_name|_local_sql|_local_schema|_LazySpark|_CATALOG_SEP|_spark_session|_local_catalogs",
  "names a local table directory" = "(?<![_A-Za-z0-9])[A-Za-z]\\w*__\\w+\\.db\\b|(?<![_A-Za-z0-9])main__\\w"
)

scan_for_local_branches <- function(files) {
  hits <- character()
  for (f in files) {
    lines <- readLines(f, warn = FALSE)
    for (what in names(local_branch_patterns)) {
      at <- grep(local_branch_patterns[[what]], lines, perl = TRUE)
      if (length(at)) {
        hits <- c(hits, sprintf("%s:%d %s: %s", basename(f), at, what, trimws(lines[at])))
      }
    }
  }
  hits
}

test_that("no shipped code outside dbrxr_platform.py branches on the local cluster", {
  files <- shipped_files()
  expect_true(any(basename(files) == "dbrxr_bootstrap.py"))
  expect_true(any(basename(files) == "dispatcher.R"))
  hits <- scan_for_local_branches(files)
  expect(length(hits) == 0, paste(c("Local-cluster branches in shipped code:", hits), collapse = "\n"))
})

test_that("the scan finds each kind of local-cluster branch", {
  # The scan itself can fail: a file with one branch of each kind.
  f <- withr::local_tempfile(fileext = ".py")
  writeLines(c(
    "root = os.environ.get('DBRXR_LOCAL_FS_ROOT')",
    "main = sys.modules.get('__main__')",
    "import dbrxr_local_platform",
    "spark = main._LazySpark()",
    "path = 'warehouse/main__s.db'"
  ), f)
  hits <- scan_for_local_branches(f)
  expect_length(hits, 5)
  expect_match(hits[1], "DBRXR_LOCAL_")
})
