# R work as Databricks jobs. A job's task is a staged request of dbrxr's one
# protocol: the request list remote_eval()/remote_function() would send (or,
# for a table verb given as a call, that verb's request to the spark target),
# serialized and staged content-addressed, answered on the job's cluster by a
# small runner of ours (inst/python/dbrxr_job_runner.py, a spark_python_task)
# through the bootstrap's answer_file(). The answer waits in staging next to
# the request for dbx_run_result(), from this session or any other.

# Table verbs that a job records as their request instead of running them.
job_verbs <- c("remote_score_table", "dbx_read_table", "dbx_write_table")

#' Run R code as a Databricks job
#'
#' Runs a function (with arguments `...`) or an expression as a job on
#' Databricks job compute: a one-off run (`runs/submit`, the default), or a
#' job on a Quartz cron `schedule` (`jobs/create`). The code, its globals and
#' objects travel as they do for [remote_eval()] and [remote_function()]
#' (serialized, staged under their content hash and reused across runs),
#' together with a small runner of ours that the job's Python task runs, so
#' the job needs no notebook and nothing installed by hand. The run outlives
#' this R session: [dbx_run()] re-attaches to it from another one, and
#' [dbx_run_result()] returns its R value.
#'
#' A call of a table verb given as an expression,
#' `quote(remote_score_table(fit, "main.crm.customers", "main.crm.scores"))`
#' (also [dbx_read_table()] and [dbx_write_table()]), is not run here: its
#' request (with the model) is recorded and the job runs it on its cluster's
#' Spark. This is how batch scoring is scheduled.
#'
#' One-off runs are submitted with an idempotency token: a submit the client
#' sends again (a dropped connection) returns the run the first one started,
#' never a second run. One-off runs start from this session's random number
#' state (as [remote_eval()] does); scheduled runs from a fresh one.
#'
#' @param fun_or_expr A function, or an expression (a call made with
#'   [quote()], a symbol, an `expression()` or a constant).
#' @param ... Arguments for the function (evaluated here, shipped as values).
#' @param cluster `NULL` runs on the connection's cluster
#'   (`existing_cluster_id`); a [job_cluster()] runs on new job compute,
#'   terminated after the run.
#' @param library A [remote_library()] environment: its library comes first on
#'   `.libPaths()` in the job (it lives in staging, so any cluster sees it).
#'   Default: the connection's library (see [remote_library()]), if any. For
#'   a job on the connection's cluster (`cluster = NULL`), the packages it
#'   needs are looked up there with this library before the job is
#'   submitted: a missing one is a `dbrxr_missing_package_error` then, not a
#'   failed run later.
#' @param name The run's (or the job's) name.
#' @param schedule A Quartz cron expression (`"0 0 2 * * ?"`: 02:00 daily;
#'   seconds, minutes, hours, day of month, month, day of week, year). Checked
#'   here before any request. `NULL`: a one-off run.
#' @param timezone The schedule's time zone (an IANA name such as
#'   `"Europe/London"`).
#' @param wait `TRUE` waits until the run has ended (its result is then one
#'   [dbx_run_result()] away); `FALSE` returns at once.
#' @param timeout Seconds the run may take on the cluster (`timeout_seconds`
#'   of the run or the job); `NULL`: no limit.
#' @param conn A `dbx_connection`.
#' @param envir Where to look up the globals of an expression.
#' @return A `dbx_run` (one-off), or a `dbx_job` (with `schedule`).
#' @seealso [dbx_run_result()], [dbx_jobs()], `vignette("jobs", package = "dbrxr")`
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' run <- remote_job(function(n) colMeans(mtcars[seq_len(n), ]), 10, conn = conn)
#' run
#' dbx_run_result(run)
#' job <- remote_job(quote(Sys.time()), schedule = "0 0 2 * * ?",
#'                   timezone = "Europe/London", name = "nightly", conn = conn)
#' dbx_jobs(conn)
#' dbx_job_delete(job)
#' dbx_disconnect(conn)
remote_job <- function(fun_or_expr, ..., cluster = NULL, library = connection_library(conn), name = NULL,
                       schedule = NULL, timezone = "UTC", wait = FALSE, timeout = NULL,
                       conn = dbx_default_connection(), envir = parent.frame()) {
  call <- rlang::current_env()
  check_not_connection(fun_or_expr, call = call)
  x <- fun_or_expr
  args <- list(...)
  if (is.function(x)) {
    if (is.primitive(x)) {
      abort_dbrxr("`fun_or_expr` must be an R function (not a primitive) or an expression.",
                  "dbrxr_input_error", call = call)
    }
  } else if (is.language(x) || is.expression(x) || (is.atomic(x) && length(x) <= 1L)) {
    if (length(args)) {
      abort_dbrxr("Arguments in `...` go with a function, not with an expression.",
                  "dbrxr_input_error",
                  hints = "Put the values in the expression, or pass a function.", call = call)
    }
  } else {
    abort_dbrxr("`fun_or_expr` must be a function or an expression.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(x)),
                hints = "Quote an expression: `remote_job(quote(my_fun(data)))`.", call = call)
  }
  check_text(name, call = call)
  check_flag(wait, null_ok = FALSE, call = call)
  check_number(timeout, min = 0, call = call)
  if (!is.null(schedule)) check_schedule(schedule, timezone, call = call)
  if (!is.null(cluster) && !inherits(cluster, "dbx_job_cluster")) {
    abort_dbrxr("`cluster` must be NULL (the connection's cluster) or a job_cluster().",
                "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(cluster)), call = call)
  }
  if (missing(library)) {
    check_connection(conn, call = call)
    library <- connection_library(conn)
  }
  if (!is.null(library) && !inherits(library, "dbx_library")) {
    abort_dbrxr("`library` must be a remote_library() environment.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(library)), call = call)
  }
  if (!is.environment(envir)) {
    abort_dbrxr("`envir` must be an environment.", "dbrxr_input_error", call = call)
  }
  check_connection(conn, call = call)

  plan <- job_request(x, args, envir, conn, seed = is.null(schedule), call = call)
  # On the connection's cluster, where the job runs; new job compute is not
  # woken up for it (nor the connection's cluster on its behalf).
  if (is.null(cluster)) check_job_packages(plan, library, conn, call = call)
  plan$req$protocol <- protocol_version
  plan$req$libpaths <- library$path
  name <- name %||% plan$name
  task <- job_task(conn, plan, cluster, call = call)
  timeout_s <- if (is.null(timeout)) 0 else ceiling(timeout)
  if (!is.null(schedule)) {
    settings <- list(name = name, tasks = list(task), max_concurrent_runs = 1,
                     timeout_seconds = timeout_s, tags = list(dbrxr = "remote_job"),
                     schedule = list(quartz_cron_expression = schedule, timezone_id = timezone,
                                     pause_status = "UNPAUSED"))
    job_id <- jobs_call(conn, "create", list(settings = settings), call = call)
    return(new_dbx_job(conn, job_id, settings))
  }
  body <- list(run_name = name, tasks = list(task), timeout_seconds = timeout_s)
  res <- jobs_call(conn, "submit", list(body = body), call = call)
  run <- dbx_run(res$run_id, conn = conn)
  if (wait) run <- run_wait(run, call = call)
  run
}

# The request a job answers: list(target, req, name, verb, spec).
job_request <- function(x, args, envir, conn, seed, call) {
  if (is.function(x)) {
    fenv <- environment(x) %||% globalenv()
    gl <- find_globals(x, fenv, call = call)
    info <- check_transportable(x, "fun_or_expr", call = call)
    info$namespaces <- c(info$namespaces, check_globals(gl$globals, call = call)$namespaces)
    sc <- session_code(gl$globals, skip = names(gl$globals), envir = fenv, call = call)
    fname <- "f"
    bundle <- list(f = x, globals = gl$globals, name = fname, session = sc$values)
    check_max_bytes(c(list(f = x), gl$globals, sc$values, args), call = call)
    bytes <- serialize(bundle, NULL, xdr = FALSE)
    ainfo <- check_globals(args, call = call)
    packages <- needed_packages(gl$packages, info$namespaces, sc$packages, ainfo$namespaces)
    req <- with_seed(list(op = "call", hash = unwrap(rust_sha256(bytes)), object = bytes,
                          args = args, packages = packages), sync = seed)
    return(list(target = "r", req = req, name = "dbrxr: function"))
  }
  expr <- x
  if (is.expression(expr)) expr <- as.call(c(as.name("{"), as.list(expr)))
  verb <- job_verb(expr)
  if (!is.null(verb)) return(record_verb(expr, verb, envir, conn, call = call))
  gl <- find_globals(expr, envir, call = call)
  info <- check_globals(gl$globals, call = call)
  sc <- session_code(gl$globals, skip = names(gl$globals), envir = envir, call = call)
  check_max_bytes(c(gl$globals, sc$values), call = call)
  req <- with_seed(list(op = "eval", expr = expr, globals = gl$globals, session = sc$values,
                        packages = needed_packages(gl$packages, info$namespaces, sc$packages)),
                   sync = seed)
  label <- paste(deparse(expr, width.cutoff = 60L)[1], collapse = "")
  list(target = "r", req = req, name = paste0("dbrxr: ", substr(label, 1, 80)))
}

# The table verb a call names (`remote_score_table(...)`, `dbrxr::...`), or NULL.
job_verb <- function(expr) {
  if (!is.call(expr)) return(NULL)
  fn <- expr[[1]]
  if (is.call(fn) && identical(fn[[1]], as.name("::")) && identical(fn[[2]], as.name("dbrxr"))) {
    fn <- fn[[3]]
  }
  if (is.name(fn) && as.character(fn) %in% job_verbs) as.character(fn) else NULL
}

# Record a table verb's request instead of running it: the verb runs here up to
# the point where it would send its request (its argument checks included),
# on a copy of the connection that knows no cached objects, so the request
# carries everything (the model too) and nothing is sent.
record_verb <- function(expr, verb, envir, conn, call) {
  rec <- new.env(parent = emptyenv())
  for (nm in ls(conn, all.names = TRUE)) assign(nm, get(nm, envir = conn), envir = rec)
  rec$remote <- new.env(parent = emptyenv())
  class(rec) <- class(conn)
  expr <- rlang::call_match(expr, get(verb, envir = asNamespace("dbrxr")))
  expr[[1]] <- call("::", as.name("dbrxr"), as.name(verb))
  expr$conn <- quote(.dbrxr_job_conn)
  env <- new.env(parent = envir)
  env$.dbrxr_job_conn <- rec
  recorded <- with_recorded_targets(tryCatch(eval(expr, env), dbrxr_recorded_request = function(r) r))
  if (!inherits(recorded, "dbrxr_recorded_request")) {
    abort_dbrxr(sprintf("`%s()` did not make a request to record.", verb), "dbrxr_internal_error",
                call = call)
  }
  spec <- recorded$req
  list(target = recorded$target, req = spec, verb = verb,
       name = sprintf("dbrxr: %s(%s)", verb, spec$output %||% spec$table %||% ""))
}

# While `code` runs, remote_target() signals its request instead of sending it.
with_recorded_targets <- function(code) {
  ns <- asNamespace("dbrxr")
  orig <- get("remote_target", envir = ns)
  record <- function(conn, target, req, ...) {
    rlang::abort("recorded", class = "dbrxr_recorded_request", target = target, req = req)
  }
  locked <- bindingIsLocked("remote_target", ns)
  if (locked) (get("unlockBinding", baseenv()))("remote_target", ns)
  assign("remote_target", record, envir = ns)
  old <- options(dbrxr.recording_targets = TRUE)  # see registered_model()
  on.exit({
    options(old)
    assign("remote_target", orig, envir = ns)
    if (locked) lockBinding("remote_target", ns)
  }, add = TRUE)
  code
}

# Stage the request, the runner and its sources; the job's task.
job_task <- function(conn, plan, cluster, call) {
  req_bytes <- serialize(plan$req, NULL, xdr = FALSE)
  staged_req <- run_job(unwrap(rust_jobs_stage_code(conn$handle, "request.bin", list(req_bytes)),
                               call = call), FALSE, call = call)
  code <- protocol_sources()
  code[["dbrxr_job_runner.py"]] <- read_source("python", "dbrxr_job_runner.py")
  staged_code <- run_job(unwrap(rust_jobs_stage_code(conn$handle, names(code), unname(code)),
                                call = call), FALSE, call = call)
  staging <- unwrap(rust_session_info(conn$handle))$staging
  params <- c("--target", plan$target,
              "--request", staged_req$files$request.bin$path,
              # Next to the request, one answer per run (the service fills in the id).
              "--answer", paste0(staged_req$dir, "/answer-{{job.run_id}}.bin"),
              "--code", staged_code$dir,
              "--root", staging,
              if (!is.null(plan$verb)) c("--verb", plan$verb),
              if (!is.null(plan$req$output)) c("--output", plan$req$output))
  task <- list(task_key = "dbrxr",
               spark_python_task = list(python_file = staged_code$files$dbrxr_job_runner.py$path,
                                        parameters = I(params)))
  if (is.null(cluster)) {
    task$existing_cluster_id <- conn$info$cluster_id
  } else {
    task$new_cluster <- resolve_job_cluster(cluster, conn, call = call)
  }
  task
}

# Parse the runner's parameters back (a run re-attached in another session).
runner_params <- function(params) {
  params <- unlist(params)
  out <- list()
  i <- 1L
  while (i < length(params)) {
    if (startsWith(params[i], "--")) out[[substring(params[i], 3)]] <- params[i + 1L]
    i <- i + 2L
  }
  out
}

#' Describe new job compute for remote_job()
#'
#' Job compute costs a fraction of all-purpose compute and exists only for
#' the run. Unset fields are taken from the connection's cluster when the job
#' is made. The access mode is single user (`SINGLE_USER`), since R runs on no
#' other; zero workers make a single-node cluster.
#'
#' @param num_workers Number of workers (0: single node).
#' @param spark_version Databricks Runtime, e.g. `"15.4.x-scala2.12"`.
#' @param node_type_id Node type, e.g. `"i3.xlarge"`.
#' @param single_user_name The user the cluster runs as.
#' @param ... Further `new_cluster` fields of the Jobs API (`spark_conf`,
#'   `custom_tags`, `aws_attributes`...).
#' @return A `dbx_job_cluster`.
#' @export
#' @examples
#' job_cluster(num_workers = 2)
job_cluster <- function(num_workers = 0, spark_version = NULL, node_type_id = NULL,
                        single_user_name = NULL, ...) {
  check_number(num_workers, min = 0)
  check_text(spark_version)
  check_text(node_type_id)
  check_text(single_user_name)
  extra <- list(...)
  if (length(extra) && (is.null(names(extra)) || any(!nzchar(names(extra))))) {
    abort_dbrxr("Further fields in `...` must be named.", "dbrxr_input_error")
  }
  structure(c(list(num_workers = num_workers, spark_version = spark_version,
                   node_type_id = node_type_id, single_user_name = single_user_name), extra),
            class = "dbx_job_cluster")
}

#' @export
print.dbx_job_cluster <- function(x, ...) {
  cat("<dbx_job_cluster> new job compute, single user\n")
  cat(sprintf("  workers:  %s%s\n", x$num_workers, if (x$num_workers == 0) " (single node)" else ""))
  cat(sprintf("  runtime:  %s\n", x$spark_version %||% "(the connection's cluster's)"))
  cat(sprintf("  node:     %s\n", x$node_type_id %||% "(the connection's cluster's)"))
  invisible(x)
}

resolve_job_cluster <- function(cluster, conn, call) {
  spec <- unclass(cluster)
  if (is.null(spec$spark_version) || is.null(spec$node_type_id)) {
    d <- run_job(unwrap(rust_cluster_status_start(conn$handle), call = call), FALSE, call = call)
    spec$spark_version <- spec$spark_version %||% d$spark_version
    spec$node_type_id <- spec$node_type_id %||% d$node_type_id
  }
  spec$data_security_mode <- "SINGLE_USER"
  if (spec$num_workers == 0) {
    spec$spark_conf <- c(spec$spark_conf, list("spark.databricks.cluster.profile" = "singleNode",
                                               "spark.master" = "local[*, 4]"))
    spec$custom_tags <- c(spec$custom_tags, list(ResourceClass = "SingleNode"))
  }
  spec[!vapply(spec, is.null, logical(1))]
}

# Quartz cron and time zone, checked as the service checks them.
check_schedule <- function(schedule, timezone, call = rlang::caller_env()) {
  check_text(schedule, null_ok = FALSE, call = call)
  check_text(timezone, null_ok = FALSE, call = call)
  res <- rust_cron_check(schedule, timezone)
  if (!isTRUE(res$ok)) {
    abort_dbrxr(sprintf("`schedule` is not a valid Quartz cron schedule: %s.", res$error$message),
                c("dbrxr_schedule_error", "dbrxr_input_error"),
                problems = sprintf("\"%s\" in time zone %s", schedule, timezone),
                hints = c("Quartz has 6 or 7 fields: seconds minutes hours day-of-month month day-of-week [year].",
                          "One of the two day fields is `?`, e.g. \"0 0 2 * * ?\" (02:00 daily), \"0 30 6 ? * MON-FRI\"."),
                schedule = schedule, timezone = timezone, call = call)
  }
  invisible(TRUE)
}

# One Jobs API operation (a Rust job); unknown runs and jobs are classed.
# Bounded by the call's deadline, else the default one (R/deadline.R), but
# for waiting on a run, which lasts as long as the run does.
jobs_call <- function(conn, op, args = list(), progress = FALSE, call = rlang::caller_env(),
                      on_interrupt = NULL) {
  if (!identical(op, "wait_run")) local_call_deadline(default_limit(conn))
  job <- unwrap(rust_jobs_start(conn$handle, op, args), call = call)
  tryCatch(run_job(job, progress, call = call, on_interrupt = on_interrupt), dbrxr_http_error = function(e) {
    if (is.null(e$not_found)) stop(e)
    what <- e$not_found
    abort_dbrxr(sprintf("There is no %s %s in this workspace.", what,
                        format(args$run_id %||% args$job_id, scientific = FALSE)),
                c(sprintf("dbrxr_%s_not_found_error", what), "dbrxr_input_error"),
                problems = conditionMessage(e),
                hints = "Check the id (runs are removed after 60 days; deleted jobs are gone).",
                call = call, parent = e)
  })
}

#' Re-attach to a job run
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param id A run id: a number (`3574646899253`), a string of digits
#'   (`"3574646899253"`, as `run$run_id` keeps it) or the run's URL
#'   (`https://<workspace>/#job/12/run/3574646899253` or
#'   `.../jobs/12/runs/3574646899253`).
#' @param conn A `dbx_connection`.
#' @return A `dbx_run`: `run_id` and `job_id` (strings of digits), `name`,
#'   `state`, `result`, `message`, `cluster`, `started`, `ended`, `url`.
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' run <- remote_job(function() Sys.getpid(), conn = conn)
#' same <- dbx_run(run$run_id, conn = conn)   # e.g. in another R session
#' dbx_run_result(same)
#' dbx_disconnect(conn)
dbx_run <- function(id, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  id <- as_dbx_id(id, "run", call = call)
  check_connection(conn, call = call)
  local_call_deadline(default_limit(conn))
  new_dbx_run(conn, jobs_call(conn, "get_run", list(run_id = id), call = call))
}

ms_time <- function(ms) {
  if (is.null(ms) || !is.numeric(ms) || ms <= 0) return(NULL)
  as.POSIXct(ms / 1000, origin = "1970-01-01", tz = "UTC")
}

new_dbx_run <- function(conn, r) {
  task <- r$tasks[[1]]
  st <- r$state
  structure(list(
    run_id = id_text(r$run_id), job_id = id_text(r$job_id), name = r$run_name %||% "",
    state = st$life_cycle_state %||% "UNKNOWN", result = st$result_state,
    message = st$state_message %||% "",
    cluster = task$cluster_instance$cluster_id %||% task$existing_cluster_id %||% NA_character_,
    started = ms_time(r$start_time), ended = ms_time(r$end_time),
    url = r$run_page_url %||% "", run_type = r$run_type, trigger = r$trigger,
    task_run_id = id_text(task$run_id),
    params = runner_params(task$spark_python_task$parameters),
    conn = conn), class = "dbx_run")
}

#' @export
print.dbx_run <- function(x, ...) {
  cat(sprintf("<dbx_run> %s  %s\n", format(x$run_id, scientific = FALSE), x$name))
  cat(sprintf("  state:    %s%s\n", x$state, if (!is.null(x$result)) sprintf(" (%s)", x$result) else ""))
  if (nzchar(x$message)) cat(sprintf("  message:  %s\n", x$message))
  cat(sprintf("  cluster:  %s\n", x$cluster))
  if (!is.null(x$started)) cat(sprintf("  started:  %s\n", format(x$started, "%Y-%m-%d %H:%M:%S %Z")))
  if (!is.null(x$ended)) {
    cat(sprintf("  ended:    %s (%.1f s)\n", format(x$ended, "%Y-%m-%d %H:%M:%S %Z"),
                as.numeric(difftime(x$ended, x$started, units = "secs"))))
  }
  cat(sprintf("  url:      %s\n", x$url))
  invisible(x)
}

# A dbx_run, or one for a run id (`conn`: its connection).
check_run <- function(run, conn = NULL, call = rlang::caller_env()) {
  if (!inherits(run, "dbx_run")) {
    if (!is.numeric(run) && !is.character(run)) {
      abort_dbrxr("`run` must be a dbx_run (from remote_job(), dbx_run() or dbx_job_run_now()) or a run id.",
                  "dbrxr_input_error", problems = sprintf("It is %s.", obj_type(run)), call = call)
    }
    id <- as_dbx_id(run, "run", arg = "run", call = call)
    check_connection(conn, call = call)
    local_call_deadline(default_limit(conn))
    return(new_dbx_run(conn, jobs_call(conn, "get_run", list(run_id = id), call = call)))
  }
  check_connection(run$conn, arg = "run$conn", call = call)
  run
}

terminal_states <- c("TERMINATED", "SKIPPED", "INTERNAL_ERROR")

#' State of a job run
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param run A `dbx_run`, or a run id: a number, a string of digits or the
#'   run's URL (see [dbx_run()]).
#' @param conn The connection, when `run` is an id.
#' @return The run, refreshed (`$state`: `QUEUED`, `PENDING`, `RUNNING`,
#'   `TERMINATING`, `TERMINATED`, `SKIPPED` or `INTERNAL_ERROR`; `$result` once
#'   it has ended: `SUCCESS`, `FAILED`, `TIMEDOUT`, `CANCELED`, ...).
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' run <- remote_job(function() 1, conn = conn)
#' dbx_run_status(run)$state
#' dbx_disconnect(conn)
dbx_run_status <- function(run, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  run <- check_run(run, if (inherits(run, "dbx_run")) NULL else conn, call = call)
  local_call_deadline(default_limit(run$conn))
  new_dbx_run(run$conn, jobs_call(run$conn, "get_run", list(run_id = run$run_id), call = call))
}

run_wait <- function(run, progress = NULL, call = rlang::caller_env()) {
  conn <- run$conn
  r <- jobs_call(conn, "wait_run", list(run_id = run$run_id, poll_max = conn$options$poll_max %||% 1),
                 progress = progress %||% conn$options$progress, call = call,
                 on_interrupt = function(last) say_still_running(run, last))
  new_dbx_run(conn, r)
}

#' Cancel a job run
#'
#' Asks the service to cancel the run (asynchronous; a run that has ended is
#' left as it is) and, with `wait = TRUE`, waits until it has stopped.
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param run A `dbx_run`, or a run id: a number, a string of digits or the
#'   run's URL (see [dbx_run()]).
#' @param conn The connection, when `run` is an id.
#' @param wait Wait until the run has ended.
#' @return The run, refreshed, invisibly (`$result` is `"CANCELED"` once it
#'   has stopped).
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' run <- remote_job(function() Sys.sleep(60), conn = conn)
#' dbx_run_cancel(run)
#' dbx_disconnect(conn)
dbx_run_cancel <- function(run, wait = TRUE, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  run <- check_run(run, if (inherits(run, "dbx_run")) NULL else conn, call = call)
  check_flag(wait, null_ok = FALSE, call = call)
  local_call_deadline(default_limit(run$conn))
  jobs_call(run$conn, "cancel", list(run_id = run$run_id), call = call)
  invisible(if (wait) run_wait(run, progress = FALSE, call = call) else dbx_run_status(run))
}

#' The R value of a job run
#'
#' Waits until the run has ended (a progress line says where it is; Ctrl-C
#' stops waiting, not the run), downloads its answer from staging and
#' delivers it as [remote_eval()] does: output printed, messages and warnings
#' re-signalled, then the value. A table verb's run returns what the verb
#' returns (a `dbx_table`, or a data frame for [dbx_read_table()]).
#'
#' Errors: an R error in the run is a `dbrxr_remote_error` with the R message,
#' the run's URL and the tail of its output; a run that was cancelled is a
#' `dbrxr_run_cancelled_error`, one that timed out a `dbrxr_run_timeout_error`,
#' one that lost its cluster a `dbrxr_run_cluster_error`, one that failed
#' before R answered a `dbrxr_run_failed_error` (all `dbrxr_run_error`s).
#'
#' @param run A `dbx_run`, or a run id: a number, a string of digits or the
#'   run's URL (see [dbx_run()]).
#' @param conn The connection, when `run` is an id.
#' @param progress Show where the run is while waiting: `TRUE`, `FALSE`, or
#'   `NULL` (the connection's option, else while interactive).
#' @return The value of the job's function or expression.
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' run <- remote_job(function(n) summary(lm(mpg ~ wt, mtcars[seq_len(n), ])), 20, conn = conn)
#' dbx_run_result(run)
#' dbx_disconnect(conn)
dbx_run_result <- function(run, progress = NULL, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  run <- check_run(run, if (inherits(run, "dbx_run")) NULL else conn, call = call)
  conn <- run$conn
  if (!run$state %in% terminal_states) run <- run_wait(run, progress = progress, call = call)
  p <- run$params
  if (is.null(p$answer)) {
    abort_dbrxr(sprintf("Run %s was not made by remote_job(): it has no dbrxr answer.",
                        format(run$run_id, scientific = FALSE)),
                "dbrxr_input_error", hints = paste("See the run:", run$url), call = call)
  }
  answer_path <- gsub("{{job.run_id}}", format(run$run_id, scientific = FALSE), p$answer, fixed = TRUE)
  ans <- NULL
  if (identical(run$result, "SUCCESS") || identical(run$result, "FAILED")) {
    ans <- tryCatch(unserialize(stage_fetch(conn, answer_path, progress = FALSE, call = call)),
                    dbrxr_error = function(e) NULL)
  }
  if (is.null(ans)) run_failed(run, call = call)
  if (identical(p$target, "r")) return(deliver_job_answer(run, ans, call = call))
  if (!identical(ans$status, "ok")) {
    spark_error(ans$error, list(table = p$table, output = p$output), call = call)
  }
  if (identical(p$verb, "dbx_read_table")) return(ans$value)
  invisible(new_dbx_table(p$output, ans$value))
}

deliver_job_answer <- function(run, ans, call) {
  ans$seed <- NULL  # the run's RNG state is not this session's
  if (identical(ans$status, "error")) {
    replay_events(ans$events)
    err <- ans$error
    tb <- err$traceback %||% character()
    abort_dbrxr(paste0("R error in job run ", format(run$run_id, scientific = FALSE), ": ", err$message),
                "dbrxr_remote_error",
                problems = c(if (!is.null(err$call)) paste("In", err$call), paste("Run:", run$url)),
                hints = c(if (length(tb)) paste0("Remote traceback: ", paste(tb, collapse = " -> ")),
                          run_output_hint(run)),
                remote_message = err$message, remote_call = err$call, remote_traceback = tb,
                remote_class = err$class, run_id = run$run_id, run_url = run$url,
                output = run_output(run)$logs, call = call)
  }
  deliver_answer(ans, call = call)
}

run_output <- function(run) {
  if (is.null(run$task_run_id)) return(list())
  tryCatch(jobs_call(run$conn, "get_output", list(run_id = run$task_run_id)),
           dbrxr_error = function(e) list())
}

run_output_hint <- function(run, out = run_output(run)) {
  logs <- out$logs %||% ""
  if (!nzchar(logs)) return(character())
  lines <- strsplit(logs, "\n", fixed = TRUE)[[1]]
  paste0("Last lines of the run's output:\n", paste(utils::tail(lines, 10), collapse = "\n"))
}

run_failed <- function(run, call) {
  id <- format(run$run_id, scientific = FALSE)
  out <- run_output(run)
  hints <- c(paste("See the run:", run$url), run_output_hint(run, out))
  result <- run$result %||% run$state
  fields <- list(run_id = run$run_id, run_url = run$url, state = run$state, result = run$result,
                 output = out$logs, call = call)
  if (identical(run$result, "CANCELED")) {
    do.call(abort_dbrxr, c(list(sprintf("Job run %s was cancelled.", id),
                                c("dbrxr_run_cancelled_error", "dbrxr_run_error", "dbrxr_cancelled_error"),
                                problems = run$message, hints = hints), fields))
  }
  if (identical(run$result, "TIMEDOUT")) {
    do.call(abort_dbrxr, c(list(sprintf("Job run %s timed out.", id),
                                c("dbrxr_run_timeout_error", "dbrxr_run_error", "dbrxr_timeout_error"),
                                problems = run$message,
                                hints = c("Give remote_job() a larger `timeout`.", hints)), fields))
  }
  if (identical(run$state, "INTERNAL_ERROR")) {
    do.call(abort_dbrxr, c(list(sprintf("Job run %s lost its cluster.", id),
                                c("dbrxr_run_cluster_error", "dbrxr_run_error", "dbrxr_cluster_error"),
                                problems = run$message,
                                hints = c("Look at the cluster's event log, then run the job again.", hints)),
                           fields))
  }
  # The task's own error first (its process exited with a status, or was
  # killed by a signal: R quit or killed itself); the run's generic state
  # message only without one.
  problems <- if (length(out$error) && nzchar(out$error)) out$error else run$message
  do.call(abort_dbrxr, c(list(sprintf("Job run %s ended %s before R answered.", id, result),
                              c("dbrxr_run_failed_error", "dbrxr_run_error"),
                              problems = problems, hints = hints), fields))
}

new_dbx_job <- function(conn, job_id, settings) {
  sch <- settings$schedule
  structure(list(job_id = id_text(job_id), name = settings$name %||% "",
                 schedule = sch$quartz_cron_expression, timezone = sch$timezone_id,
                 pause_status = sch$pause_status, conn = conn), class = "dbx_job")
}

#' @export
print.dbx_job <- function(x, ...) {
  cat(sprintf("<dbx_job> %s  %s\n", format(x$job_id, scientific = FALSE), x$name))
  if (!is.null(x$schedule)) {
    cat(sprintf("  schedule: %s (%s), %s\n", x$schedule, x$timezone, x$pause_status %||% "UNPAUSED"))
  }
  invisible(x)
}

#' List jobs
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param conn A `dbx_connection`.
#' @param name Only jobs of this exact name (`NULL`: all).
#' @return A data frame: `job_id` (a string of digits), `name`, `schedule`,
#'   `timezone`, `pause_status`, `created` (POSIXct, UTC), `creator`, and the
#'   newest run's `last_run_id`, `last_state` (its result once it has ended,
#'   else its life cycle state) and `last_start` (`NA` for a job that never
#'   ran). [dbx_job_runs()] lists a job's runs.
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' dbx_jobs(conn)
#' dbx_disconnect(conn)
dbx_jobs <- function(conn = dbx_default_connection(), name = NULL) {
  call <- rlang::current_env()
  check_connection(conn, call = call)
  check_text(name, call = call)
  local_call_deadline(default_limit(conn))
  jobs <- jobs_call(conn, "list_jobs", list(name = name), call = call)
  col <- function(f, type) vapply(jobs, function(j) f(j) %||% type[NA_integer_], type)
  last <- lapply(jobs, function(j) {
    jobs_call(conn, "list_runs", list(job_id = id_text(j$job_id), max = 1), call = call)
  })
  last <- job_runs_frame(lapply(last, function(r) if (length(r)) r[[1]] else list()))
  data.frame(
    job_id = col(function(j) id_text(j$job_id), character(1)),
    name = col(function(j) j$settings$name, character(1)),
    schedule = col(function(j) j$settings$schedule$quartz_cron_expression, character(1)),
    timezone = col(function(j) j$settings$schedule$timezone_id, character(1)),
    pause_status = col(function(j) j$settings$schedule$pause_status, character(1)),
    created = as.POSIXct(col(function(j) j$created_time, numeric(1)) / 1000,
                         origin = "1970-01-01", tz = "UTC"),
    creator = col(function(j) j$creator_user_name, character(1)),
    last_run_id = last$run_id,
    last_state = ifelse(is.na(last$result), last$state, last$result),
    last_start = last$start,
    stringsAsFactors = FALSE)
}

check_job <- function(job, conn, call) {
  if (inherits(job, "dbx_job")) return(list(id = job$job_id, conn = job$conn))
  id <- as_dbx_id(job, "job", arg = "job", call = call)
  check_connection(conn, call = call)
  list(id = id, conn = conn)
}

#' Run a job now
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @param job A `dbx_job` (from [remote_job()] with a `schedule`), or a job id.
#' @param conn The connection, when `job` is an id.
#' @return A `dbx_run`.
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' job <- remote_job(quote(Sys.Date()), schedule = "0 0 2 * * ?", conn = conn)
#' dbx_run_result(dbx_job_run_now(job))
#' dbx_job_delete(job)
#' dbx_disconnect(conn)
dbx_job_run_now <- function(job, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  j <- check_job(job, if (inherits(job, "dbx_job")) NULL else conn, call)
  local_call_deadline(default_limit(j$conn))
  run_id <- jobs_call(j$conn, "run_now", list(job_id = j$id), call = call)
  dbx_run(run_id, conn = j$conn)
}

#' Delete a job
#'
#' Its schedule stops at once; runs already started go on.
#'
#' The call is bounded by the connection's `timeout` option, else the option
#' `dbrxr.timeout`, else 60 seconds; past it a `dbrxr_timeout_error` is raised.
#'
#' @inheritParams dbx_job_run_now
#' @return `TRUE`, invisibly.
#' @export
#' @examplesIf interactive()
#' conn <- local_cluster()
#' job <- remote_job(quote(1), schedule = "0 0 2 * * ?", conn = conn)
#' dbx_job_delete(job)
#' dbx_disconnect(conn)
dbx_job_delete <- function(job, conn = dbx_default_connection()) {
  call <- rlang::current_env()
  j <- check_job(job, if (inherits(job, "dbx_job")) NULL else conn, call)
  local_call_deadline(default_limit(j$conn))
  jobs_call(j$conn, "delete", list(job_id = j$id), call = call)
  invisible(TRUE)
}

# Runs of a job (newest first), for tests and the vignette.
job_runs <- function(job, active_only = FALSE, max = 100) {
  runs <- jobs_call(job$conn, "list_runs", list(job_id = job$job_id, active_only = active_only, max = max))
  lapply(runs, function(r) new_dbx_run(job$conn, r))
}
