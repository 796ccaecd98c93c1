# The live suite (tests/live) against a standalone dbrxr-local, for
# test-sitrep-live.R and test-slow-sitrep-live.R.

live_runner <- function() {
  run <- testthat::test_path("..", "live", "run.R")
  if (!file.exists(run)) skip("tests/live is not here (an installed copy of the tests)")
  normalizePath(run)
}

# Start `dbrxr-local` in the background; its URL from its first line.
start_standalone <- function(state_dir, token, .env = parent.frame()) {
  skip_if_not_installed("processx")
  bin <- tryCatch(dbrxr_local_path(), dbrxr_local_cluster_error = function(e) skip(conditionMessage(e)))
  p <- processx::process$new(bin, c("--port", "0", "--token", token, "--state-dir", state_dir,
                                    "--python", local_python()),
                             stdout = "|", stderr = file.path(dirname(state_dir), "dbrxr-local.err"))
  withr::defer(if (p$is_alive()) { p$kill(); p$wait(5000) }, envir = .env)
  p$poll_io(20000)
  line <- p$read_output_lines(1)
  url <- sub(".*listening on ", "", line)
  if (!startsWith(url, "http://")) stop("dbrxr-local did not start: ", line)
  url
}

# Everything the cluster stores that a run could leave behind: DBFS, Volumes,
# Spark's tables and anything else under the state directory except the
# server's own scratch (logs, temporary uploads, the context's working dir).
stored <- function(state_dir) {
  files <- list.files(state_dir, recursive = TRUE, all.files = TRUE, include.dirs = TRUE)
  # The server's own bookkeeping, not objects the suite made: context logs,
  # job run logs, and the MLflow server's store and its run artifacts under
  # dbfs:/databricks/mlflow-tracking (a deleted registered model's logged
  # model stays there, as it does in a workspace's run history).
  scratch <- paste0("^((logs|tmp|driver|r-site-library|mlflow)(/|$)|jobs/logs(/|$)|worker\\.py$|fs/spark/tmp(/|$)",
                    "|fs/dbfs/databricks(/mlflow-tracking(/|$)|$))")
  sort(files[!grepl(scratch, files)])
}

# The shell blocks of a CI example (`run: |` in GitHub Actions, `script: |` in
# Azure Pipelines) with the step's name, in order.
ci_steps <- function(path) {
  lines <- readLines(path)
  steps <- list()
  i <- 1
  while (i <= length(lines)) {
    m <- regmatches(lines[i], regexec("^(\\s*)(- )?(run|script): \\|\\s*$", lines[i]))[[1]]
    if (length(m)) {
      indent <- nchar(m[2]) + nchar(m[3])
      j <- i + 1
      while (j <= length(lines) && (!nzchar(trimws(lines[j])) ||
                                    nchar(sub("\\S.*", "", lines[j])) > indent)) j <- j + 1
      block <- lines[seq_len(j - i - 1) + i]
      # The step's name: `name:` above (GitHub) or `displayName:` below (Azure).
      above <- rev(grep("^\\s*- name: ", lines[seq_len(i - 1)], value = TRUE))[1]
      below <- grep("^\\s*displayName: ", lines[j:min(length(lines), j + 3)], value = TRUE)[1]
      name <- sub("^\\s*(- name|displayName): ", "", if (!is.na(below) && grepl("script", m[4])) below else above)
      steps[[length(steps) + 1]] <- list(name = name, script = sub(sprintf("^\\s{0,%d}", indent + 2), "", block))
      i <- j
    } else {
      i <- i + 1
    }
  }
  steps
}

run_step <- function(step, dir, env) {
  script <- file.path(dir, "step.sh")
  writeLines(c("set -eo pipefail", step$script), script)
  processx::run("bash", script, wd = dir, env = c("current", env), error_on_status = FALSE,
                timeout = 600)
}

# The shell steps of the CI examples `files` (under inst/examples/ci) run
# here: the service, unit tests, live tests skipped and run.
expect_ci_examples_run <- function(files) {
  skip_if_no_rpy2()
  skip_if_not_installed("processx")
  examples <- system.file("examples", "ci", package = "dbrxr")
  expect_true(nzchar(examples))
  # The installed dbrxr stands in for the "Install" steps; contexts get a
  # Python with rpy2, as python3-rpy2 gives the runners.
  base_env <- c(R_LIBS = paste(.libPaths(), collapse = ":"), DBRXR_PYTHON = local_python(),
                DATABRICKS_HOST = "", DATABRICKS_TOKEN = "", DATABRICKS_CLUSTER_ID = "",
                DATABRICKS_CONFIG_PROFILE = "", DBRXR_LIVE_SCHEMA = "")
  for (file in files) {
    steps <- ci_steps(file.path(examples, file))
    names <- vapply(steps, `[[`, "", "name")
    expect_identical(sum(grepl("^Install", names)), 2L, info = file)
    expect_true(any(grepl("^Start dbrxr-local", names)), info = file)
    dir <- file.path(withr::local_tempdir(), "project")
    dir.create(dir)
    file.copy(file.path(examples, "tests"), dir, recursive = TRUE)
    stopped <- FALSE
    for (step in steps[!grepl("^Install", names)]) {
      res <- run_step(step, dir, base_env)
      out <- paste(res$stdout, res$stderr)
      expect_identical(res$status, 0L, info = paste(file, step$name, out))
      if (grepl("^Unit tests", step$name)) expect_match(out, "PASS 2", fixed = TRUE)
      if (grepl("^Live tests", step$name)) {
        expect_match(res$stdout, "No workspace secrets: live tests skipped.", fixed = TRUE)
        # And with a workspace configured: a standalone local cluster stands in.
        state <- file.path(withr::local_tempdir(), "state")
        dir.create(state)
        url <- start_standalone(state, "dapi-ci-workspace")
        res <- run_step(step, dir, c(base_env[c("R_LIBS", "DBRXR_PYTHON")],
                                     DATABRICKS_HOST = url, DATABRICKS_TOKEN = "dapi-ci-workspace",
                                     DATABRICKS_CLUSTER_ID = "local-cluster",
                                     DBRXR_LIVE_SCHEMA = "main.default"))
        out <- paste(res$stdout, res$stderr)
        expect_identical(res$status, 0L, info = paste(file, "live with a workspace", out))
        expect_match(out, "Grants", fixed = TRUE)
        expect_match(out, "PASS 2", fixed = TRUE)
      }
      if (grepl("^Stop", step$name)) stopped <- TRUE
    }
    expect_true(stopped)
    # The service is gone: its port is free again for the next file.
    pid <- as.integer(readLines(file.path(dir, "dbrxr-local.pid")))
    Sys.sleep(0.5)
    stat <- file.path("/proc", pid, "stat")
    gone <- function() {
      line <- tryCatch(readLines(stat, warn = FALSE)[1], error = function(e) NA, warning = function(w) NA)
      is.na(line) || grepl("^\\S+ \\(.*\\) Z", line)  # no process, or a zombie
    }
    deadline <- Sys.time() + 15
    while (!gone() && Sys.time() < deadline) Sys.sleep(0.2)
    expect_true(gone())
  }
}
