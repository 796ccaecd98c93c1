# dbx_sitrep(): what will fail before it does. Each check is one probe with its
# own time budget, runs whatever the others found, and removes what it made.
# Probes go through the verbs that exist (dbx_exec(), remote_eval(), the
# staging jobs, clusters/get) and two reads of our own: SCIM `Me` and Unity
# Catalog's effective permissions (src/rust/src/api/access.rs).

#' Check that a workspace can run dbrxr
#'
#' Runs each check once, in order, and reports what is ready and what will
#' fail, with the fix:
#'
#' * **credentials**: who the workspace says you are (SCIM `Me`).
#' * **cluster**: it exists, its state and Databricks Runtime version.
#' * **access mode**: R runs only on clusters in *Dedicated* (single user)
#'   access mode; *Standard* (shared) clusters, serverless compute and SQL
#'   warehouses cannot run it.
#' * **python**: Python and rpy2 in an execution context (a missing rpy2 names
#'   the fix: a cluster library, or `install_rpy2 = TRUE`).
#' * **r**: R on the cluster against yours (major.minor): `serialize()` is
#'   compatible across versions, packages built for another R are not.
#' * **staging**: a small file is written to the staging location, read back
#'   and deleted.
#' * **paths**: `/dbfs` and `/Volumes` exist in an execution context.
#' * **spark**: the context's `spark` session and its version.
#' * **mlflow**: MLflow importable in the context, and its registry URI
#'   (needed only to log models).
#' * **serving**: the Serving Endpoints API answers ([remote_serve()]); on a
#'   workspace a warning says what serving an R model needs there and that it
#'   is not verified (the serving image must bring R and rpy2).
#' * **grants** (with `schema`): the Unity Catalog privileges needed to read
#'   tables, create tables and register models in that schema.
#'
#' The whole report is bounded by `timeout`, one deadline for all the checks:
#' a check still waiting then fails with "no answer within the report's time
#' limit", and the checks after it are skipped. Every check catches its own
#' errors (one failing check never stops the others) and leaves nothing behind. The checks that
#' need an execution context are skipped when the cluster is not running, so
#' that `dbx_sitrep()` never starts a cluster.
#'
#' On the local cluster every check passes (MLflow once the cluster's Python
#' has it). It has one user (`local@dbrxr.invalid`), who owns every catalog
#' and schema and holds `ALL_PRIVILEGES` on them: it enforces no Unity
#' Catalog permissions.
#'
#' @param conn A `dbx_connection`.
#' @param schema `NULL`, or a Unity Catalog schema `"catalog.schema"` whose
#'   grants to check.
#' @param timeout Seconds the whole report may take (`NULL`: the connection's
#'   `timeout` option, else the option `dbrxr.timeout`, else 60).
#' @return A `dbx_sitrep`: a data frame with one row per check and columns
#'   `check`, `status` (`"ok"`, `"warn"`, `"fail"` or `"skip"`), `detail`,
#'   `fix` (`NA` when there is nothing to do) and `seconds`. It prints as a
#'   checklist.
#' @seealso [dbx_cluster_status()], [dbx_connect()]; the live suite
#'   (`make test-live`, README section "Checking dbrxr against your
#'   workspace").
#' @export
#' @examplesIf dbrxr:::sitrep_example_ok()
#' conn <- local_cluster()
#' report <- dbx_sitrep(conn, schema = "main.default")
#' report
#' report[report$status != "ok", ]
#' dbx_disconnect(conn)
dbx_sitrep <- function(conn = dbx_default_connection(), schema = NULL, timeout = NULL) {
  check_connection(conn)
  check_schema_name(schema)
  check_number(timeout, min = 0.001)
  budget <- timeout %||% default_limit(conn)
  local_call_deadline(budget)
  deadline <- Sys.time() + budget  # one for the whole report
  found <- new.env(parent = emptyenv())  # what earlier checks learned
  rows <- list()
  for (ch in sitrep_checks) {
    rows <- c(rows, run_check(ch, conn, schema, deadline, budget, found))
  }
  df <- data.frame(
    check = vapply(rows, `[[`, "", "check"),
    status = vapply(rows, `[[`, "", "status"),
    detail = vapply(rows, `[[`, "", "detail"),
    fix = vapply(rows, function(r) r$fix %||% NA_character_, ""),
    seconds = vapply(rows, `[[`, 0, "seconds"),
    stringsAsFactors = FALSE
  )
  structure(df, class = c("dbx_sitrep", "data.frame"))
}

check_schema_name <- function(schema, call = rlang::caller_env()) {
  check_text(schema, call = call)
  if (is.null(schema)) return(invisible())
  parts <- strsplit(schema, ".", fixed = TRUE)[[1]]
  if (length(parts) != 2L || any(!nzchar(trimws(parts))) || endsWith(schema, ".")) {
    abort_dbrxr("`schema` must name a Unity Catalog schema as \"catalog.schema\".",
                "dbrxr_input_error", problems = sprintf("It is \"%s\".", schema),
                hints = "For example `schema = \"main.default\"`.", call = call)
  }
  invisible(schema)
}

# ---- Running checks ------------------------------------------------------

# A row of the report.
sitrep_row <- function(check, status, detail, fix = NULL) {
  list(check = check, status = status, detail = detail, fix = fix)
}

# Run one check before the report's deadline. Its errors become a failed
# row; warnings from the probe are not the user's business; interrupts stop
# it all. Once the deadline has passed, the check is skipped.
run_check <- function(ch, conn, schema, deadline, budget, found) {
  started <- Sys.time()
  if (started >= deadline) {
    return(lapply(ch$rows %||% ch$name, function(nm) {
      c(sitrep_row(nm, "skip", sprintf("Not checked: the report's time limit of %s s ran out.", format(budget)),
                   "Raise `timeout`, or check that the workspace answers (the checks before say where it stalled)."),
        seconds = 0)
    }))
  }
  rows <- tryCatch(
    withCallingHandlers(ch$run(conn, schema, deadline, found),
                        warning = function(w) invokeRestart("muffleWarning"),
                        message = function(m) invokeRestart("muffleMessage")),
    error = function(e) {
      # The rows this check would have given: the first fails, the rest skip.
      others <- lapply(setdiff(ch$rows %||% ch$name, ch$name), function(nm) {
        sitrep_row(nm, "skip", sprintf("Not checked: the %s check failed.", ch$name))
      })
      c(list(failed_row(ch$name, e, ch$fix)), others)
    }
  )
  if (!is.null(rows$check)) rows <- list(rows)
  secs <- as.numeric(difftime(Sys.time(), started, units = "secs"))
  lapply(rows, function(r) {
    r$seconds <- round(secs, 3)
    r
  })
}

# A failed row from an error: what failed (the condition's headline and its
# problems), and the fix the check knows for this error, else its hints.
failed_row <- function(check, e, fix = NULL) {
  # dbrxr conditions (cli) keep the headline in `message`, bullets in `body`.
  headline <- if (length(e$message)) e$message[[1]] else conditionMessage(e)
  body <- e$body %||% character()
  nms <- names(body) %||% rep("", length(body))
  problems <- body[nms == "x"]
  hints <- body[nms == "i"]
  detail <- paste(c(headline, problems), collapse = ": ")
  if (inherits(e, "dbrxr_timeout_error")) {
    detail <- sprintf("No answer within the report's time limit (%s).", headline)
  }
  known <- if (is.function(fix)) fix(e) else NULL
  fix_text <- known %||% (if (length(hints)) paste(hints, collapse = " ")) %||%
    (if (!inherits(e, "dbrxr_error")) "This looks like a bug in dbrxr; please report it.")
  sitrep_row(check, "fail", one_line(detail), fix_text)
}

one_line <- function(x) gsub("\\s*\n\\s*", " ", paste(x, collapse = " "))

seconds_left <- function(deadline) {
  max(0.001, as.numeric(difftime(deadline, Sys.time(), units = "secs")))
}

# Wait for a Rust job until `deadline`; then cancel it and raise a timeout.
wait_within <- function(job, deadline, what, call = rlang::caller_env()) {
  run_job(job, FALSE, call = call, deadline = deadline, on_expiry = function() {
    abort_dbrxr(sprintf("%s took longer than the report's time limit.", what),
                "dbrxr_timeout_error", call = call)
  })
}

cluster_is_up <- function(found) {
  is.null(found$cluster_state) || found$cluster_state %in% c("RUNNING", "RESIZING")
}

skip_unless_up <- function(check, found) {
  if (cluster_is_up(found)) return(NULL)
  sitrep_row(check, "skip",
             sprintf("The cluster is %s; this check needs it running.", found$cluster_state),
             "Start the cluster (any remote verb starts it), then run `dbx_sitrep()` again.")
}

# ---- The checks ------------------------------------------------------------

check_credentials <- function(conn, schema, deadline, found) {
  job <- unwrap(rust_current_user_start(conn$handle, seconds_left(deadline)))
  me <- wait_within(job, deadline, "Asking who you are")
  user <- me$userName %||% me$displayName %||% me$id
  if (is.null(user)) {
    return(sitrep_row("credentials", "warn", "The workspace did not say who you are (no userName in SCIM Me).",
                      "Check that the host is a Databricks workspace."))
  }
  found$user <- user
  found$groups <- unlist(lapply(me$groups, function(g) g$display), use.names = FALSE)
  sitrep_row("credentials", "ok",
             sprintf("Signed in as %s (%s auth) at %s.", user, conn$info$auth_type, conn$info$host))
}

fix_credentials <- function(e) {
  if (inherits(e, "dbrxr_auth_error") || inherits(e, "dbrxr_http_401") || inherits(e, "dbrxr_http_403")) {
    return(paste("The workspace refused the credentials: create a new personal access token",
                 "(User Settings > Developer > Access tokens) and set DATABRICKS_TOKEN, or check the",
                 "profile (`databricks auth login`, ~/.databrickscfg)."))
  }
  if (inherits(e, "dbrxr_network_error")) {
    return("Check the host (DATABRICKS_HOST): it must be the workspace URL, reachable from here.")
  }
  NULL
}

# Access modes (data_security_mode) and what they mean for R.
access_modes <- list(
  ok = c("SINGLE_USER", "LEGACY_SINGLE_USER", "DATA_SECURITY_MODE_DEDICATED"),
  no_uc = c("NONE"),
  fail = c("USER_ISOLATION", "DATA_SECURITY_MODE_STANDARD", "LEGACY_TABLE_ACL",
           "LEGACY_SINGLE_USER_STANDARD", "LEGACY_PASSTHROUGH")
)

dedicated_fix <- paste("Use an all-purpose cluster in Dedicated (single user) access mode: edit the",
                       "cluster (Access mode: Dedicated, assigned to you) or create one, and",
                       "connect to it (`cluster_id`, or DATABRICKS_CLUSTER_ID).")

check_cluster <- function(conn, schema, deadline, found) {
  job <- unwrap(rust_cluster_status_start(conn$handle))
  d <- wait_within(job, deadline, "Reading the cluster's details")
  state <- d$state %||% "UNKNOWN"
  found$cluster_state <- state
  where <- sprintf("%s%s", d$cluster_id %||% conn$info$cluster_id,
                   if (length(d$cluster_name)) sprintf(" (%s)", d$cluster_name) else "")
  detail <- sprintf("%s is %s, runtime %s.", where, state, d$spark_version %||% "unknown")
  cluster <- switch(state,
    RUNNING = , RESIZING = sitrep_row("cluster", "ok", detail),
    TERMINATED = , TERMINATING = sitrep_row("cluster", "warn", detail,
      "dbrxr starts it on first use (this takes minutes); start it now in the workspace to save that wait."),
    PENDING = , RESTARTING = sitrep_row("cluster", "warn", detail,
      "It is starting: run `dbx_sitrep()` again in a few minutes."),
    sitrep_row("cluster", "fail",
               paste0(sub("\\.$", "", detail), ": ", d$state_message %||% "no state message", "."),
               "Look at the cluster's event log in the workspace, fix the cause and start it again.")
  )
  list(cluster, access_mode_row(d, found))
}

fix_cluster <- function(e) {
  if (inherits(e, "dbrxr_cluster_error") || inherits(e, "dbrxr_http_400") || inherits(e, "dbrxr_http_404")) {
    return(paste("Check `cluster_id` (or DATABRICKS_CLUSTER_ID): it must be the id of an all-purpose",
                 "cluster in this workspace; SQL warehouses and serverless compute cannot run R."))
  }
  fix_credentials(e)
}

access_mode_row <- function(d, found) {
  mode <- d$data_security_mode
  if (is.null(mode) || !nzchar(mode)) {
    return(sitrep_row("access mode", "warn",
                      "The workspace reports no access mode for this cluster (a legacy cluster: no Unity Catalog).",
                      dedicated_fix))
  }
  if (mode %in% access_modes$fail) {
    return(sitrep_row("access mode", "fail",
                      sprintf("%s is Standard (shared) access mode: R and rpy2 are not supported there.", mode),
                      dedicated_fix))
  }
  if (mode %in% access_modes$no_uc) {
    return(sitrep_row("access mode", "warn",
                      "NONE (no isolation): R runs, but Unity Catalog tables, volumes and models are not available.",
                      dedicated_fix))
  }
  if (!mode %in% access_modes$ok) {
    return(sitrep_row("access mode", "warn",
                      sprintf("%s: Databricks may choose Standard (shared) mode, where R does not run.", mode),
                      dedicated_fix))
  }
  owner <- d$single_user_name
  detail <- sprintf("%s (Dedicated%s): R can run.", mode,
                    if (length(owner)) paste(", assigned to", owner) else "")
  me <- c(found$user, found$groups)
  if (length(owner) && length(found$user) && !owner %in% me) {
    return(sitrep_row("access mode", "warn",
                      sprintf("%s (Dedicated), assigned to %s, not to you (%s): the cluster refuses your commands unless you belong to %s.",
                              mode, owner, found$user, owner),
                      "Connect to a cluster assigned to you, or ask its owner to assign it to you or to a group of yours."))
  }
  sitrep_row("access mode", "ok", detail)
}

# Python, rpy2 and R: one protocol request (it bootstraps the context when it
# needs to, and the bootstrap reports the versions).
check_runtime <- function(conn, schema, deadline, found) {
  skip <- skip_unless_up("python", found)
  if (!is.null(skip)) {
    return(list(skip, sitrep_row("r", "skip", skip$detail, skip$fix)))
  }
  r_remote <- tryCatch(
    remote_eval(quote(paste(R.version$major, R.version$minor, sep = ".")), conn,
                substitute = FALSE, timeout = seconds_left(deadline)),
    error = function(e) e)
  if (inherits(r_remote, "error")) {
    failed <- failed_row("python", r_remote, fix_runtime)
    if (inherits(r_remote, "dbrxr_context_error") && length(r_remote$python)) {
      failed$detail <- sprintf("%s (Python %s)", failed$detail, r_remote$python)
    }
    return(list(failed, sitrep_row("r", "skip", "Not checked: needs R in the context (see python).")))
  }
  info <- remote_state(conn)$info
  python <- sitrep_row("python", "ok", sprintf("Python %s with rpy2 %s%s.", info$python_version %||% "?",
                                               info$rpy2_version %||% "?",
                                               if (length(info$libraries) && nzchar(info$libraries)) paste0("; ", info$libraries) else ""))
  list(python, r_version_row(r_remote, as.character(getRversion())))
}

fix_runtime <- function(e) {
  if (inherits(e, "dbrxr_context_error") && grepl("rpy2", conditionMessage(e))) {
    return(paste("Add rpy2 as a cluster library ({\"pypi\": {\"package\": \"rpy2\"}}, Libraries tab or",
                 "API) and restart the cluster, or connect with `install_rpy2 = TRUE` to pip-install it",
                 "in the execution context."))
  }
  NULL
}

# Same major.minor: ok. Otherwise a warning: values travel fine, packages do not.
r_version_row <- function(remote, local) {
  mm <- function(v) paste(utils::head(strsplit(v, ".", fixed = TRUE)[[1]], 2), collapse = ".")
  if (identical(mm(remote), mm(local))) {
    return(sitrep_row("r", "ok", sprintf("R %s on the cluster, R %s here.", remote, local)))
  }
  sitrep_row("r", "warn",
             sprintf("R %s on the cluster, R %s here: serialize() is compatible, but packages built for R %s do not load in R %s.",
                     remote, local, mm(local), mm(remote)),
             paste("Install packages on the cluster with `remote_library()` (built there, for its R),",
                   "never from your library; or use an R here with the cluster's minor version."))
}

check_staging <- function(conn, schema, deadline, found) {
  info <- unwrap(rust_session_info(conn$handle))
  root <- sub("/+$", "", info$staging)
  path <- paste0(root, "/sitrep-", unique_id(), ".probe")
  probe <- charToRaw(paste("dbrxr sitrep probe", unique_id()))  # leaves .Random.seed alone
  written <- FALSE
  on.exit(if (written) remove_probe(conn, path), add = TRUE)
  written <- TRUE  # a failed write may still have left a partial file to remove
  wait_within(stage_start(conn, probe, "cache", path = path), deadline, sprintf("Writing %s", path))
  back <- wait_within(unwrap(rust_fetch_start(conn$handle, path, NULL)), deadline,
                      sprintf("Reading %s back", path))
  if (!identical(back, probe)) {
    return(sitrep_row("staging", "fail", sprintf("%s was written but read back different bytes.", root),
                      "Check the storage behind the staging location, or choose another with `staging =`."))
  }
  wait_within(unwrap(rust_remove_start(conn$handle, path)), deadline, sprintf("Deleting %s", path))
  written <- FALSE
  sitrep_row("staging", "ok", sprintf("%s: a file was written, read back and deleted.", root))
}

# Remove the probe even when the check failed or ran out of time: clean-up
# after the report's deadline, with a short budget of its own (2 s), so a
# dead workspace cannot hang the report.
remove_probe <- function(conn, path) {
  outer <- the$deadline
  the$deadline <- NULL
  on.exit(the$deadline <- outer, add = TRUE)
  try(wait_within(unwrap(rust_remove_start(conn$handle, path)), Sys.time() + 2, "Removing the probe"),
      silent = TRUE)
}

fix_staging <- function(e) {
  if (inherits(e, "dbrxr_http_403") || identical(e$error_code, "PERMISSION_DENIED")) {
    return(paste("You cannot write to the staging location: ask for WRITE VOLUME (and READ VOLUME) on",
                 "its volume, or use a location you can write with `staging =` in `dbx_connect()` (or",
                 "DBRXR_STAGING), e.g. \"/Volumes/<catalog>/<schema>/<volume>/dbrxr\"."))
  }
  if (inherits(e, "dbrxr_http_404") || inherits(e, "dbrxr_http_400")) {
    return(paste("The staging location does not exist or is not allowed here (DBFS root may be",
                 "disabled): use a Unity Catalog volume, `staging = \"/Volumes/<catalog>/<schema>/<volume>/dbrxr\"`."))
  }
  fix_credentials(e)
}

# /dbfs and /Volumes in the context (FUSE mounts on a cluster; on the local
# cluster, mount namespaces where the machine allows them).
paths_probe <- "import os; print(os.path.isdir('/dbfs'), os.path.isdir('/Volumes'))"

check_paths <- function(conn, schema, deadline, found) {
  skip <- skip_unless_up("paths", found)
  if (!is.null(skip)) return(skip)
  seen <- trimws(dbx_exec(paths_probe, conn, timeout = seconds_left(deadline)))
  if (identical(seen, "True True")) {
    return(sitrep_row("paths", "ok", "/dbfs and /Volumes are there in the execution context."))
  }
  sitrep_row("paths", "warn",
             conn$local_info$paths_missing %||% "/dbfs or /Volumes is missing in the execution context.",
             paste("Code that opens /dbfs/... or /Volumes/... paths fails there; read and write through",
                   "dbfs:/ paths in Spark or the DBFS and Files APIs (dbx_upload(), dbx_download())."))
}

# Constant probes (no value of the user's is ever pasted into them); each
# prints one value per line and defines no names in the context.
spark_probe <- "print(spark.version)"
mlflow_probe <- paste0("print('\\n'.join((lambda m: [m.__version__, str(m.get_registry_uri())])",
                       "(__import__('mlflow'))))")

check_spark <- function(conn, schema, deadline, found) {
  skip <- skip_unless_up("spark", found)
  if (!is.null(skip)) return(skip)
  out <- dbx_exec(spark_probe, conn, timeout = seconds_left(deadline))
  version <- trimws(strsplit(out, "\n", fixed = TRUE)[[1]][1])
  sitrep_row("spark", "ok", sprintf("Spark %s in the execution context.", version))
}

fix_spark <- function(e) {
  if (inherits(e, "dbrxr_remote_python_error")) {
    return(paste("The context has no working `spark` session: use an all-purpose cluster with a",
                 "Databricks Runtime. The table verbs (`remote_score_table()`, `dbx_read_table()`) need it."))
  }
  NULL
}

check_mlflow <- function(conn, schema, deadline, found) {
  skip <- skip_unless_up("mlflow", found)
  if (!is.null(skip)) return(skip)
  out <- tryCatch(dbx_exec(mlflow_probe, conn, timeout = seconds_left(deadline)),
                  dbrxr_remote_python_error = function(e) e)
  if (inherits(out, "error")) {
    if (!grepl("ModuleNotFoundError|No module named", paste(out$summary, out$cause))) stop(out)
    return(sitrep_row("mlflow", "warn", "MLflow is not importable in the cluster's Python.",
                      paste("Only `remote_log_model()` needs it: use a Databricks Runtime (ML), or add",
                            "mlflow as a cluster library ({\"pypi\": {\"package\": \"mlflow\"}}).")))
  }
  lines <- trimws(strsplit(out, "\n", fixed = TRUE)[[1]])
  sitrep_row("mlflow", "ok", sprintf("MLflow %s, registry URI %s.", lines[1], lines[2] %||% "?"))
}

# Model Serving: the Serving Endpoints API answers, and what serving an R
# model needs there. The local cluster serves with MLflow's scoring server
# and its own Python and R (verified by tests/testthat/test-serve.R). A
# workspace builds an endpoint's image from the logged model's environment:
# remote_log_model() writes conda.yaml with r-base and r-<package> entries,
# but requirements.txt and python_env.yaml (pip) carry rpy2 and no R, and no
# workspace has been seen to install R from them: not verified.
check_serving <- function(conn, schema, deadline, found) {
  eps <- serving_call(conn, "list")
  n <- sprintf("%d endpoint%s", length(eps), if (length(eps) == 1L) "" else "s")
  if (inherits(conn, "dbx_local_connection")) {
    return(sitrep_row("serving", "ok", sprintf(
      "The local cluster serves registered models with MLflow's scoring server and its own Python and R (%s).", n)))
  }
  sitrep_row("serving", "warn",
             paste0("The Serving Endpoints API answers (", n, "). Serving an R model needs R and rpy2 in the ",
                    "endpoint's image: the logged model's conda.yaml lists r-base and its R packages, its pip ",
                    "requirements list rpy2 but no R; that a workspace's serving image gets R from them is not verified."),
             paste("Before relying on an endpoint, serve a model with `remote_serve()` and query it with",
                   "`dbx_endpoint_query()`; to score now, use `remote_score()` or a job running `remote_score_table()`."))
}

# ---- Grants ----------------------------------------------------------------

# What each capability needs in the schema, besides USE CATALOG on its catalog.
schema_needs <- list(
  "read tables" = c("USE_SCHEMA", "SELECT"),
  "create tables" = c("USE_SCHEMA", "CREATE_TABLE"),
  "register models" = c("USE_SCHEMA", "CREATE_MODEL")
)

check_grants <- function(conn, schema, deadline, found) {
  if (is.null(schema)) {
    return(sitrep_row("grants", "skip", "No schema given.",
                      "Give `schema = \"catalog.schema\"` to check the grants for tables and models there."))
  }
  catalog <- strsplit(schema, ".", fixed = TRUE)[[1]][1]
  read <- function(what, type, name) {
    job <- unwrap(rust_uc_read_start(conn$handle, what, type, name, seconds_left(deadline)))
    wait_within(job, deadline, sprintf("Reading the %s of %s %s", what, type, name))
  }
  me <- wait_within(unwrap(rust_current_user_start(conn$handle, seconds_left(deadline))),
                    deadline, "Asking who you are")
  # A catalog or schema that does not exist (or that you cannot see) fails
  # the check, named: nothing can be read, written or registered there.
  details <- function(type, name) {
    tryCatch(read("details", type, name), dbrxr_http_404 = function(e) {
      rlang::return_from(frame, sitrep_row("grants", "fail",
        sprintf("The %s %s does not exist, or you cannot see it (%s).", type, name, one_line(e$message)),
        fix_grants(e)))
    })
  }
  frame <- rlang::current_env()
  catalog_details <- details("catalog", catalog)
  schema_details <- details("schema", schema)
  access <- list(
    user = me$userName %||% me$id,
    groups = unlist(lapply(me$groups, function(g) g$display), use.names = FALSE),
    catalog = catalog_details,
    schema = schema_details,
    catalog_permissions = read("permissions", "catalog", catalog),
    schema_permissions = read("permissions", "schema", schema)
  )
  grants_row(schema, access)
}

fix_grants <- function(e) {
  if (inherits(e, "dbrxr_http_404")) {
    return(paste("The schema does not exist, or you cannot see it (seeing it needs USE CATALOG on",
                 "its catalog): create it (`CREATE SCHEMA`), or check the name."))
  }
  if (inherits(e, "dbrxr_http_403")) {
    return("Ask an owner of the schema or a metastore admin for the grants (you may not read them yourself).")
  }
  fix_credentials(e)
}

# Privileges held through the user, their groups, or `account users`, from
# the effective permissions (inherited ones included); owners hold them all.
grants_row <- function(schema, access) {
  who <- c(access$user, access$groups, "account users")
  held <- function(perms) {
    mine <- Filter(function(a) isTRUE(a$principal %in% who), perms$privilege_assignments)
    unique(unlist(lapply(mine, function(a) vapply(a$privileges, function(p) p$privilege %||% "", ""))))
  }
  owns_catalog <- isTRUE(access$catalog$owner %in% who)
  owns_schema <- owns_catalog || isTRUE(access$schema$owner %in% who)
  on_catalog <- held(access$catalog_permissions)
  on_schema <- held(access$schema_permissions)
  has <- function(priv, on, owner) owner || any(c(priv, "ALL_PRIVILEGES") %in% on)
  # ALL_PRIVILEGES on the schema does not include USE CATALOG; an inherited
  # USE_CATALOG may be listed with the schema's privileges.
  use_catalog <- has("USE_CATALOG", on_catalog, owns_catalog) || "USE_CATALOG" %in% on_schema
  missing_in_schema <- unique(unlist(lapply(schema_needs, function(p) {
    p[!vapply(p, has, TRUE, on = on_schema, owner = owns_schema)]
  })))
  can <- vapply(schema_needs, function(p) use_catalog && all(!p %in% missing_in_schema), TRUE)
  summary <- paste(sprintf("%s: %s", names(can), ifelse(can, "yes", "no")), collapse = ", ")
  if (all(can)) {
    how <- if (owns_schema) "you own it" else "granted"
    return(sitrep_row("grants", "ok", sprintf("%s (%s): %s.", schema, how, summary)))
  }
  catalog <- strsplit(schema, ".", fixed = TRUE)[[1]][1]
  grantee <- access$user %||% "<you>"
  stmts <- c(
    if (!use_catalog) sprintf("GRANT USE CATALOG ON CATALOG `%s` TO `%s`;", catalog, grantee),
    if (length(missing_in_schema)) {
      sprintf("GRANT %s ON SCHEMA `%s` TO `%s`;", paste(gsub("_", " ", missing_in_schema), collapse = ", "),
              gsub(".", "`.`", schema, fixed = TRUE), grantee)
    })
  sitrep_row("grants", "fail", sprintf("%s: %s; missing %s.", schema, summary,
                                       paste(c(if (!use_catalog) "USE_CATALOG", missing_in_schema), collapse = ", ")),
             paste("Ask an owner of the schema (or a metastore admin) to run:", paste(stmts, collapse = " ")))
}

sitrep_checks <- list(
  list(name = "credentials", run = check_credentials, fix = fix_credentials),
  list(name = "cluster", rows = c("cluster", "access mode"), run = check_cluster, fix = fix_cluster),
  list(name = "python", rows = c("python", "r"), run = check_runtime, fix = fix_runtime),
  list(name = "staging", run = check_staging, fix = fix_staging),
  list(name = "paths", run = check_paths, fix = NULL),
  list(name = "spark", run = check_spark, fix = fix_spark),
  list(name = "mlflow", run = check_mlflow, fix = NULL),
  list(name = "serving", run = check_serving, fix = NULL),
  list(name = "grants", run = check_grants, fix = fix_grants)
)

# ---- Printing ----------------------------------------------------------------

sitrep_labels <- c(credentials = "Credentials", cluster = "Cluster", "access mode" = "Access mode",
                   python = "Python and rpy2", r = "R version", staging = "Staging location",
                   spark = "Spark", mlflow = "MLflow", serving = "Model Serving", grants = "Grants")

# The columns the checklist is made of; a subset without them (or with no
# rows) prints as the data frame it is.
sitrep_columns <- c("check", "status", "detail", "fix", "seconds")

#' @export
format.dbx_sitrep <- function(x, ...) {
  if (!all(sitrep_columns %in% names(x)) || !nrow(x) ||
      !all(x$status %in% c("ok", "warn", "fail", "skip"))) {
    return(utils::capture.output(print(as.data.frame(unclass_sitrep(x)), ...)))
  }
  mark <- c(ok = cli::col_green(cli::symbol$tick), warn = cli::col_yellow("!"),
            fail = cli::col_red(cli::symbol$cross), skip = cli::col_grey("-"))
  label <- ifelse(is.na(sitrep_labels[x$check]), x$check, sitrep_labels[x$check])
  width <- max(nchar(label))
  lines <- character()
  for (i in seq_len(nrow(x))) {
    lines <- c(lines, sprintf("%s %s  %s", mark[[x$status[i]]], formatC(label[i], width = -width), x$detail[i]))
    if (!is.na(x$fix[i]) && x$status[i] != "ok") {
      lines <- c(lines, paste0(strrep(" ", width + 4), cli::col_cyan(paste("fix:", x$fix[i]))))
    }
  }
  n <- table(factor(x$status, levels = c("ok", "warn", "fail", "skip")))
  c("<dbx_sitrep>", lines,
    sprintf("%d ok, %d warn, %d fail, %d skipped (%.1f s)", n[["ok"]], n[["warn"]], n[["fail"]],
            n[["skip"]], sum(x$seconds)))
}

#' @export
print.dbx_sitrep <- function(x, ...) {
  cat(format(x, ...), sep = "\n")
  invisible(x)
}

unclass_sitrep <- function(x) {
  class(x) <- setdiff(class(x), "dbx_sitrep")
  x
}

# Examples need a local cluster that can run R.
sitrep_example_ok <- function() !is.null(rpy2_python())
