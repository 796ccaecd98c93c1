#' Start a local cluster
#'
#' Starts dbrxr's embedded, Databricks-compatible local cluster on background
#' threads of this R process and returns a connection to it. Everything that
#' works against a workspace works against it: the same client code talks to it
#' over the same REST API (clusters, Command Execution 1.2, DBFS, Files API,
#' OAuth M2M), and its execution contexts are real Python processes in which R
#' runs through rpy2.
#'
#' @section Three ways to run it:
#' * From R: `local_cluster()` (this function). [dbx_disconnect()] stops it, and
#'   so do garbage collection of the connection and the end of the R session.
#'   Several can run at once. Its threads never call into R: R work happens in
#'   the context processes.
#' * As a standalone server for CI pipelines and any Databricks client: the
#'   binary `dbrxr-local`, installed with the package (its path:
#'   [dbrxr_local_path()]; its flags are the options below spelled
#'   `--max-contexts`, see `dbrxr-local --help`). Its first line on stdout is
#'   `dbrxr-local listening on http://127.0.0.1:PORT`; point
#'   `DATABRICKS_HOST`/`DATABRICKS_TOKEN` at it.
#' * In tests: the package's own test suites run on it (Rust tests start it
#'   in-process; the conformance suite runs the official Python
#'   `databricks-sdk` against the binary).
#'
#' @section What it emulates:
#' One all-purpose cluster with the state machine TERMINATED -> PENDING ->
#' RUNNING (and RESTARTING); execution contexts with notebook semantics
#' (common indentation removed, stdout and stderr captured, a trailing
#' expression shown as `Out[n]: ...`, exceptions as `Finished` with
#' `resultType: "error"`, cancel as an interrupt, commands queued per context,
#' contexts in parallel, the 145-context limit with eviction of idle contexts,
#' text output cut at `max_output_chars` with `truncated: true`); DBFS 2.0
#' with its 1 MiB limits and streaming handles; the Files API for
#' `/Volumes/...` paths; OAuth M2M tokens; the exact 401/403 bodies; control
#' routes under `/_local/` for tests (counters, fault injection, restart,
#' eviction). It binds 127.0.0.1 only.
#'
#' Contexts take `python`, `sql` (statements on the context's Spark session)
#' and `r` (R code in the context's own R, results as text). The cluster's
#' processes (contexts and job tasks) see DBFS at `/dbfs` and volumes at
#' `/Volumes`, the files of the DBFS and Files APIs, through a mount namespace
#' of their own; where the machine refuses namespaces, a message at start
#' says why and [dbx_sitrep()] shows it.
#'
#' @section What it does not emulate:
#' Scala contexts, cluster libraries, workspace files, Unity Catalog
#' permissions (any `/Volumes/<catalog>/<schema>/<volume>` exists), multipart
#' and presigned-URL uploads, and real cluster start times (set
#' `start_delay_ms` to simulate them). Installed R packages are those of the
#' local machine.
#'
#' @section Runtime profiles:
#' `local_cluster(runtime = "15.4")` stands in for Databricks Runtime 15.4 LTS
#' from the inside too: its contexts and job tasks run a Python environment
#' pinned to the libraries that runtime's release notes list (Python 3.11,
#' pandas 1.5.3, PyArrow 14.0.1, NumPy 1.23.5, PySpark 3.5.0, mlflow-skinny
#' 2.11.4; `tools/runtime-15.4.txt` in the sources, which cites them), and
#' `clusters/get` reports `15.4.x-scala2.12`. Code that uses a newer pandas or
#' MLflow API then fails locally as it would on the cluster. Build the
#' environment once with `make runtime-15.4` in a dbrxr checkout; the cluster
#' looks for it in `$DBRXR_RUNTIME_HOME/.venv-15.4`, else `./.venv-15.4`, and
#' a missing one is a `dbrxr_local_runtime_error` that names the make target.
#' The MLflow server keeps running from `python`. A profile exists for each
#' Databricks Runtime LTS whose Python this machine can install: on Debian 12
#' (Python 3.11) that is 15.4 LTS; 16.4 LTS needs Python 3.12 and is refused.
#' Without `runtime`, contexts run `python` as it is (unpinned libraries) and
#' the cluster still reports 15.4, the newest profile; opt in with `runtime`.
#'
#' @param python Python interpreter for the contexts. Default: the environment
#'   variable `DBRXR_PYTHON`, else the first of `python3` on the `PATH` and
#'   `/usr/bin/python3` that can import rpy2. Without rpy2, contexts still run
#'   Python, and a warning says how to install it (`apt-get install
#'   python3-rpy2` or `pip install rpy2`).
#' @param port TCP port on 127.0.0.1; `0` picks a free one.
#' @param token The bearer token clients must send; generated when `NULL`.
#' @eval local_options_doc()
#' @return A `dbx_connection` of class `dbx_local_connection`. Its field
#'   `local_info` holds `url`, `cluster_id`, `state_dir`, `python`, `rpy2`
#'   (whether that Python can import rpy2), `runtime` (the profile, or `NULL`),
#'   `spark_version` and `paths_missing` (`NULL`, or why `/dbfs` and
#'   `/Volumes` are missing in the cluster's processes). When no default connection is
#'   open, it becomes the default (see [dbx_default_connection()]). It runs
#'   until [dbx_disconnect()], garbage collection or the end of the session;
#'   in tests, [local_test_cluster()] stops it when the test ends.
#' @seealso [dbx_connect()] for a workspace, [dbx_disconnect()],
#'   [dbx_default_connection()], [local_test_cluster()].
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' conn
#' conn$local_info$url
#' dbx_disconnect(conn)
local_cluster <- function(python = NULL, port = 0L, token = NULL, ...) {
  claim_default(start_local_cluster(python, port, token, list(...), call = rlang::current_env()))
}

# local_cluster() without making it the default (local_test_cluster() scopes that).
start_local_cluster <- function(python, port, token, dots, call = rlang::caller_env()) {
  server_names <- local_server_options()
  check_option_names(dots, c(server_names, names(session_option_defaults)),
                     known_options_hint(), call = call, args = names(formals(local_cluster)))
  server <- dots[intersect(names(dots), server_names)]
  session <- check_session_options(dots[intersect(names(dots), names(session_option_defaults))],
                                   call = call)

  opts <- c(list(python = python, port = port, token = token), server)
  opts <- opts[!vapply(opts, is.null, logical(1))]
  # Names, values and their combinations are checked by the option table in Rust.
  unwrap(rust_local_check_options(opts), call = call)
  started <- unwrap(rust_local_start(opts), call = call)
  info <- started$info
  if (!isTRUE(info$rpy2)) {
    cli::cli_warn(c("!" = cli_escape(sentence_case(info$warning %||% "This Python has no rpy2.")),
                    "i" = "Python commands work; R code sent through rpy2 will fail."),
                  class = "dbrxr_local_no_rpy2_warning", call = call)
  }
  if (!is.null(info$paths_missing)) {
    cli::cli_inform(c("!" = cli_escape(info$paths_missing)), class = "dbrxr_local_no_paths_message")
  }
  creds <- if (!is.null(server$client_id)) {
    c(client_id = server$client_id, client_secret = server$client_secret,
      auth_type = "oauth-m2m")
  } else {
    c(token = info$token, auth_type = "pat")
  }
  res <- tryCatch(
    unwrap(rust_connect(c(host = info$url, cluster_id = info$cluster_id, creds)), call = call),
    error = function(e) {
      local_cluster_stop(started$id)
      stop(e)
    }
  )
  conn <- new_connection(res$handle, res$info, options = session, local = started$id,
                         class = "dbx_local_connection")
  conn$local_info <- list(url = info$url, cluster_id = info$cluster_id,
                          state_dir = info$state_dir, python = info$python,
                          rpy2 = isTRUE(info$rpy2), runtime = info$runtime,
                          spark_version = info$spark_version, paths_missing = info$paths_missing)
  pane_opened(conn)  # RStudio's connections pane (R/connections-pane.R)
  conn
}

# The local cluster's option table (name, flag, default, help, accepts), from Rust.
local_option_table <- function() as.data.frame(unwrap(rust_local_option_table()))

# Options of `...` (python, port and token are arguments of their own).
local_server_options <- function() {
  setdiff(local_option_table()$name, names(formals(local_cluster)))
}

# The roxygen `@param ...` of local_cluster(), written from the option table
# (`make docs`), so the docs list exactly what the server takes.
local_options_doc <- function() {
  t <- local_option_table()
  t <- t[t$name %in% local_server_options(), ]
  default <- ifelse(nzchar(t$default), sprintf(" Default `%s`.", t$default), "")
  items <- sprintf("#'   * `%s`: %s (%s).%s", t$name, t$help, t$accepts, default)
  c("@param ... Server options (the flags of `dbrxr-local`, as `--max-contexts` for",
    "  `max_contexts`):",
    sub("^#' ", "", items),
    "",
    "  And the session options of [dbx_connect()]: `poll_max`, `cluster_timeout`,",
    "  `install_rpy2`, `progress`, `timeout`.")
}

known_options_hint <- function() {
  c(paste("Server options:", paste(local_server_options(), collapse = ", ")),
    paste("Session options:", paste(names(session_option_defaults), collapse = ", ")))
}

# Stop a local cluster by handle id; idempotent (close_connection() calls it).
local_cluster_stop <- function(id) {
  if (is.null(id)) return(invisible(FALSE))
  invisible(unwrap(rust_local_stop(as.integer(id))))
}

#' @export
format.dbx_local_connection <- function(x, ...) {
  # Its settings come from local_cluster(), not from the user's configuration.
  lines <- sub("  \\((argument|default)\\)$", "", NextMethod())
  li <- x$local_info
  if (is.null(li)) return(lines)
  c(lines,
    sprintf("  python:   %s%s", li$python, if (isTRUE(li$rpy2)) " (with rpy2)" else " (no rpy2: R work will fail)"),
    if (length(li$runtime)) sprintf("  runtime:  %s (%s), pinned libraries", li$runtime, li$spark_version),
    sprintf("  state:    %s", li$state_dir))
}

# Control helpers for tests: each goes through the real /_local/ routes.
check_local <- function(conn, call = rlang::caller_env()) {
  check_connection(conn, call = call)
  if (!inherits(conn, "dbx_local_connection") || is.null(conn$local)) {
    abort_dbrxr("This needs a local cluster connection.", "dbrxr_input_error",
                hints = "Create one with `local_cluster()`.", call = call)
  }
  as.integer(conn$local)
}

local_control <- function(conn, method, path, body = NULL, call = rlang::caller_env()) {
  id <- check_local(conn, call = call)
  unwrap(rust_local_control(id, method, path, body), call = call)
}

# Counters: requests and bytes per route, contexts and commands.
local_stats <- function(conn) local_control(conn, "GET", "/_local/stats")

# Inject faults on /api/ routes (all zero turns them off).
local_faults <- function(conn, status_429_rate = 0, status_503_rate = 0, retry_after_s = 0,
                         drop_rate = 0, latency_ms = 0, seed = 1) {
  for (r in c("status_429_rate", "status_503_rate", "drop_rate")) {
    v <- get(r)
    check_number(v, r, null_ok = FALSE, min = 0)
    if (v > 1) abort_dbrxr(sprintf("`%s` must be between 0 and 1.", r), "dbrxr_input_error")
  }
  check_whole(retry_after_s, "retry_after_s")
  check_whole(latency_ms, "latency_ms")
  check_whole(seed, "seed")
  body <- sprintf(paste0('{"status_429_rate": %.17g, "status_503_rate": %.17g, ',
                         '"retry_after_s": %.0f, "drop_rate": %.17g, "latency_ms": %.0f, "seed": %.0f}'),
                  status_429_rate, status_503_rate, retry_after_s, drop_rate, latency_ms, seed)
  invisible(local_control(conn, "POST", "/_local/faults", body))
}

# Restart the cluster: every context is lost (RESTARTING, then RUNNING).
local_restart <- function(conn) invisible(local_control(conn, "POST", "/_local/cluster/restart"))

# Terminate the cluster (clusters/start brings it back).
local_terminate <- function(conn) invisible(local_control(conn, "POST", "/_local/cluster/terminate"))

# Evict idle contexts, as a busy cluster does; the ids evicted.
local_evict <- function(conn) unlist(local_control(conn, "POST", "/_local/contexts/evict")$evicted)

# For examples (`@examplesIf`): run them where a local cluster can start, so
# that example() and R CMD check run them: the binary is installed and a
# Python can import rpy2.
local_example_ok <- function() {
  nzchar(system.file("bin", "dbrxr-local", package = "dbrxr")) && !is.null(rpy2_python())
}
