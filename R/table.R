# Tables: R data frames to and from Unity Catalog tables, and R models scored
# over tables on the cluster's Spark executors. The Spark side is
# inst/python/dbrxr_spark.py, installed in the context next to the bootstrap
# module; values travel as R serialize() bytes and staged files (a data frame
# up, a model bundle once by content hash), never in generated source.

#' A SQL query as a table source
#'
#' Marks `query` as Spark SQL for [remote_score_table()] and
#' [dbx_read_table()]. Nothing runs until one of them uses it.
#'
#' @param query A Spark SQL `SELECT` statement. Unity Catalog names
#'   (`main.schema.table`) work on Databricks and on the local cluster.
#' @return A `dbx_sql` object.
#' @export
#' @examples
#' q <- dbx_sql("SELECT * FROM main.crm.customers WHERE region = 'EU'")
#' q
dbx_sql <- function(query) {
  check_string(query, null_ok = FALSE)
  structure(list(query = query), class = "dbx_sql")
}

#' @export
print.dbx_sql <- function(x, ...) {
  cat("<dbx_sql>", x$query, "\n")
  invisible(x)
}

#' Read a table into a data frame
#'
#' Runs on the cluster's Spark session; the rows come back as one R data
#' frame, converted column by column from Arrow (no pandas).
#'
#' Type mapping (Spark → R): `boolean` → logical; `tinyint`, `smallint`,
#' `int` → integer; `bigint`, `float`, `double`, `decimal` → double;
#' `string` → character; `date` → `Date`; `timestamp` → `POSIXct` (time zone
#' UTC, microseconds). Nulls become `NA`; a double `NaN` stays `NaN`. Other
#' types (arrays, maps, structs, binary) are a `dbrxr_input_error`.
#'
#' @param table A table name (`catalog.schema.table`) or a [dbx_sql()] query.
#' @param limit At most this many rows (`NULL`: all; mind the memory).
#' @param conn A `dbx_connection`.
#' @param timeout Seconds before the read is cancelled (`NULL`: none).
#' @return A `data.frame`.
#' @seealso [dbx_write_table()], [remote_score_table()]
#' @export
#' @examplesIf dbrxr:::spark_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' dbx_write_table(mtcars, "main.demo.cars", mode = "overwrite", conn = conn)
#' head(dbx_read_table("main.demo.cars", limit = 5, conn = conn))
#' dbx_disconnect(conn)
dbx_read_table <- function(table, limit = NULL, conn = dbx_default_connection(),
                           timeout = NULL) {
  call <- rlang::current_env()
  spec <- table_source(table, call = call)
  check_number(limit, min = 0, call = call)
  check_connection(conn, call = call)
  spec$op <- "read"
  spec$limit <- if (!is.null(limit)) format(limit, scientific = FALSE)
  spec$inline_max <- format(inline_answer_max(), scientific = FALSE)
  spark_run(conn, spec, timeout = timeout, call = call)
}

#' Write a data frame to a table
#'
#' The inverse of [dbx_read_table()]: `df` travels as R serialize() bytes
#' through the connection's staging location, becomes a parquet file on the
#' cluster (column by column, through Arrow) and then the table.
#'
#' Type mapping (R → Spark): logical → `boolean`; integer → `int`; double →
#' `double`; character and factor → `string`; `Date` → `date`; `POSIXct` →
#' `timestamp`. Round trips are `identical()` except: factors come back as
#' character, `POSIXct` comes back in time zone UTC and to the microsecond,
#' `Date`s are whole days, row names and other attributes are dropped.
#'
#' @param df A data frame.
#' @param name The table name (`catalog.schema.table`); the schema must exist.
#' @param mode `"error"` (the table must not exist), `"overwrite"` (replace it;
#'   the old one stays intact if the write fails) or `"append"`.
#' @inheritParams dbx_read_table
#' @return A `dbx_table` (invisibly).
#' @export
#' @examplesIf dbrxr:::spark_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' dbx_write_table(iris, "main.demo.iris", mode = "overwrite", conn = conn)
#' dbx_disconnect(conn)
dbx_write_table <- function(df, name, mode = c("error", "overwrite", "append"),
                            conn = dbx_default_connection(), timeout = NULL) {
  call <- rlang::current_env()
  if (!is.data.frame(df)) {
    abort_dbrxr("`df` must be a data frame.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(df)), call = call)
  }
  check_table_name(name, call = call)
  mode <- rlang::arg_match(mode, error_call = call)
  check_connection(conn, call = call)
  bytes <- serialize(as.data.frame(df), NULL, xdr = FALSE)
  staged <- stage_bytes(conn, bytes, "session", progress = FALSE, call = call)
  on.exit(stage_remove_quiet(conn, staged$path), add = TRUE)
  res <- spark_run(conn, list(op = "write", output = name, mode = mode, data = staged$path),
                   timeout = timeout, call = call)
  invisible(new_dbx_table(name, res))
}

#' Score a table with an R model on Spark
#'
#' Runs `predict(model, batch, ...)` over a table on the cluster's Spark
#' executors (`mapInArrow`) and writes the predictions to the table `output`.
#' The model is staged once under its content hash; each executor's Python
#' worker loads it once into its embedded R and keeps it. Batches become R data
#' frames column by column from Arrow buffers; factor columns get the model's
#' own levels (`xlevels`, `forest$xlevels`, ranger's
#' `forest$covariate.levels`, rpart's `xlevels` attribute), so a batch scores
#' exactly as the whole table would.
#'
#' Output columns: the `keep` columns as they are, then the predictions: an
#' atomic vector becomes one column named `prediction`, a factor its labels,
#' a matrix or data frame one column per column named
#' `{prediction}_{colname}`.
#'
#' An R error in a batch is a `dbrxr_remote_error` with the R message and the
#' batch's rows, counted in the source as [dbx_read_table()] returns it (also
#' its Spark partition and the rows within it); a table that does not exist,
#' or an `output` that exists in `"error"` mode, is raised before any Spark
#' job. R warnings raised in batches are signalled here after the job, once
#' per distinct text (at most 20), as `dbrxr_remote_warning`s saying how many
#' batches raised them.
#' An interrupt (Ctrl-C) or `timeout` cancels the Spark job group; in
#' `"error"` and `"overwrite"` modes the output is written aside and swapped in
#' at the end, so the previous table stays intact; in `"append"` mode the
#' writer commits only when the whole job succeeds (Delta's transaction on
#' Databricks), so a failed job adds no rows.
#'
#' @param model A fitted model, the path of an `.rds` file, or a
#'   `function(newdata)` returning predictions (e.g. a formula wrapper around
#'   a `glmnet` fit).
#' @param table A table name, a [dbx_sql()] query, or a dbplyr lazy table over a
#'   [databricks_sql()] connection (its SQL, from `dbplyr::sql_render()`).
#' @param output The output table name.
#' @param ... Further arguments to `predict()`.
#' @param type Passed to `predict()` as `type` when not `NULL`.
#' @param keep Names of input columns copied to the output (e.g. an id).
#' @param prediction Name (or prefix) of the prediction columns.
#' @param postprocess A function applied to each batch's `predict()` value.
#' @param mode `"error"`, `"overwrite"` or `"append"` (see [dbx_write_table()]).
#' @param conn A `dbx_connection`.
#' @param progress Show a progress bar of the Spark tasks done: `TRUE`,
#'   `FALSE`, or `NULL` (the connection's option, else while interactive).
#' @param timeout Seconds before the job is cancelled (`NULL`: none).
#' @return A `dbx_table` (invisibly): `name`, `rows`, `columns`, `seconds`.
#' @export
#' @examplesIf dbrxr:::spark_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' dbx_write_table(mtcars, "main.demo.cars", mode = "overwrite", conn = conn)
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' remote_score_table(fit, "main.demo.cars", "main.demo.cars_scored",
#'                    keep = "wt", mode = "overwrite", conn = conn)
#' dbx_disconnect(conn)
remote_score_table <- function(model, table, output, ..., type = NULL, keep = NULL,
                               prediction = ".pred", postprocess = NULL,
                               mode = c("error", "overwrite", "append"),
                               conn = dbx_default_connection(), progress = NULL,
                               timeout = NULL) {
  call <- rlang::current_env()
  spec <- table_source(table, call = call)
  check_table_name(output, "output", call = call)
  mode <- rlang::arg_match(mode, error_call = call)
  if (!is.null(keep) && (!is.character(keep) || anyNA(keep))) {
    abort_dbrxr("`keep` must be a character vector of column names.", "dbrxr_input_error",
                call = call)
  }
  check_string(prediction, null_ok = FALSE, call = call)
  if (!is.null(postprocess) && !is.function(postprocess)) {
    abort_dbrxr("`postprocess` must be a function.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(postprocess)), call = call)
  }
  check_connection(conn, call = call)
  args <- list(...)
  if (!is.null(type)) args$type <- type
  bundle <- score_bundle(model, args, postprocess, prediction, call = call)
  spec$op <- "check"
  spec$output <- output
  spec$mode <- mode
  spark_run(conn, spec, call = call)
  staged <- stage_bytes(conn, bundle$bytes, "cache", progress = FALSE, call = call)
  spec$op <- "score"
  spec$keep <- keep
  spec$level_cols <- bundle$level_cols
  spec$bundle <- staged$path
  spec$hash <- bundle$hash
  spec$libpaths <- remote_state(conn)$library$path
  spec$group <- paste0("dbrxr-", unique_id())
  spec$convert <- getOption("dbrxr.table_convert")  # "pandas2ri": benchmarks only
  if (want_progress(progress %||% conn$options$progress)) {
    spec$progress <- sub("result-", "progress-", result_path(conn), fixed = TRUE)
  }
  res <- spark_run(conn, spec, timeout = timeout, call = call)
  relay_batch_warnings(res$warning, res$warning_batches)
  invisible(new_dbx_table(output, res))
}

# R warnings raised while scoring batches on the executors, signalled here
# once per distinct text with the number of batches that raised it.
relay_batch_warnings <- function(texts, batches) {
  for (i in seq_along(texts)) {
    n <- as.integer(batches[i])
    rlang::warn(sprintf("(on the cluster, in %d batch%s) %s", n, if (identical(n, 1L)) "" else "es",
                        texts[i]),
                class = "dbrxr_remote_warning", remote_message = texts[i], batches = n)
  }
}

#' @export
print.dbx_table <- function(x, ...) {
  cat(sprintf("<dbx_table> %s\n", x$name))
  if (!is.na(x$rows)) cat(sprintf("  rows:    %s\n", format(x$rows, big.mark = ",")))
  cat(sprintf("  columns: %s\n", paste(x$columns, collapse = ", ")))
  cat(sprintf("  seconds: %.1f\n", x$seconds))
  invisible(x)
}

new_dbx_table <- function(name, res) {
  rows <- as.numeric(res$rows %||% NA)
  structure(list(name = name, rows = if (isTRUE(rows < 0)) NA_real_ else rows,
                 columns = unlist(res$columns %||% character()),
                 seconds = as.numeric(res$seconds %||% NA)),
            class = "dbx_table")
}

# Everything executors need, in one serialized list staged by content hash.
score_bundle <- function(model, args, postprocess, prediction, call) {
  if (is.function(model)) {
    model <- shippable_function(model, call)
    info <- check_transportable(model, "model", call = call)
    packages <- needed_packages(info$namespaces, namespace_refs(model))
  } else {
    rm <- as_remote_model(model, call = call)
    if (is.character(model) || inherits(model, "dbx_remote_model")) {
      model <- rm$store$model %||% unserialize(model_bytes(rm))
    }
    packages <- rm$packages
  }
  if (!is.null(postprocess)) {
    postprocess <- shippable_function(postprocess, call)
    pinfo <- check_transportable(postprocess, "postprocess", call = call)
    packages <- needed_packages(packages, pinfo$namespaces, namespace_refs(postprocess))
  }
  levels <- model_levels(model)
  b <- list(model = model, args = args, postprocess = postprocess,
            levels = levels, packages = setdiff(packages, base_packages),
            prediction = prediction)
  bytes <- serialize(b, NULL, xdr = FALSE)
  list(bytes = bytes, hash = unwrap(rust_sha256(bytes)),
       level_cols = setdiff(model_inputs(model), names(levels)))
}

# A function for a table job's bundle, shipped as remote_function() ships
# one: its environment becomes a new one holding only the globals it uses, so
# the frame it was made in (often holding the data) does not travel to every
# executor. A function scoring a 1e7-row table inside a function once carried
# that table along (1.7 GB on the driver).
shippable_function <- function(f, call) {
  if (is_package_function(f) || is.primitive(f)) return(f)
  gl <- find_globals(f, environment(f) %||% globalenv(), call = call)
  check_globals(gl$globals, call = call)
  environment(f) <- list2env(gl$globals, parent = globalenv())
  f
}

# The input columns of a model, where it says (ranger keeps no factor levels
# by default: its string inputs get the table's distinct values as levels).
model_inputs <- function(model) {
  if (is.function(model)) return(character())
  if (is.list(model$forest) && is.character(model$forest$independent.variable.names)) {
    return(model$forest$independent.variable.names)
  }
  tt <- tryCatch(stats::terms(model), error = function(e) NULL)
  if (is.null(tt)) character() else all.vars(stats::delete.response(tt))
}

# The factor levels a model recorded when it was fitted, by column.
model_levels <- function(model) {
  if (is.function(model)) return(list())
  cands <- list(model$xlevels, attr(model, "xlevels"),
                if (is.list(model$forest)) model$forest$xlevels,
                if (is.list(model$forest)) model$forest$covariate.levels)
  out <- list()
  for (lv in cands) {
    if (!is.list(lv) || is.null(names(lv))) next
    for (v in names(lv)) {
      if (is.character(lv[[v]]) && is.null(out[[v]])) out[[v]] <- lv[[v]]
    }
  }
  out
}

name_pattern <- "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"

check_table_name <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  check_string(x, arg = arg, null_ok = FALSE, call = call)
  if (!grepl(name_pattern, x)) {
    abort_dbrxr(sprintf("`%s` is not a table name.", arg), "dbrxr_input_error",
                problems = sprintf("Got '%s'.", x),
                hints = "Use catalog.schema.table (letters, digits and underscores), e.g. main.crm.customers.",
                call = call)
  }
  invisible(x)
}

table_source <- function(table, call) {
  if (inherits(table, "dbx_sql")) return(list(query = table$query))
  # A dbplyr lazy table (over a databricks_sql() connection): its query.
  if (inherits(table, "tbl_lazy")) return(list(query = as.character(dbplyr::sql_render(table))))
  check_table_name(table, call = call)
  list(table = table)
}

# ---- running a table operation in the context ---------------------------------

spark_module_code <- function() {
  src <- read_source("python", "dbrxr_spark.py")
  paste0(
    "import sys, os, base64, hashlib, tempfile, importlib\n",
    "_s = base64.b64decode(", py_b64(src), ")\n",
    "_d = os.path.join(tempfile.gettempdir(), 'dbrxr-py-' + hashlib.sha256(_s).hexdigest()[:16])\n",
    "os.makedirs(_d, exist_ok=True)\n",
    "_p = os.path.join(_d, 'dbrxr_spark.py')\n",
    "if not os.path.exists(_p):\n",
    "    open(_p + '.part', 'wb').write(_s)\n",
    "    os.replace(_p + '.part', _p)\n",
    "if _d not in sys.path:\n",
    "    sys.path.insert(0, _d)\n",
    "if 'dbrxr_spark' in sys.modules and sys.modules['dbrxr_spark'].__file__ != _p:\n",
    "    del sys.modules['dbrxr_spark']\n",
    "import dbrxr_spark\n",
    "del _s, _d, _p\n")
}

spark_call_code <- function(spec, result) {
  fields <- unlist(lapply(names(spec), function(k) {
    v <- spec[[k]]
    if (is.null(v)) return(NULL)
    paste0(k, "=", vapply(as.character(v), utils::URLencode, "", reserved = TRUE))
  }))
  paste0(
    "import sys\n",
    "if 'dbrxr_bootstrap' not in sys.modules:\n",
    "    print('", marker, ":NOBOOT')\n",
    "elif 'dbrxr_spark' not in sys.modules:\n",
    "    print('", marker, ":NOSPARK')\n",
    "else:\n",
    "    sys.modules['dbrxr_spark'].run(", py_b64(paste(fields, collapse = "&")), ", ",
    py_b64(result), ")\n")
}

spark_run <- function(conn, spec, timeout = NULL, call = rlang::caller_env()) {
  if (is.null(remote_state(conn)$info)) remote_bootstrap(conn, call = call)
  result <- if (identical(spec$op, "read")) result_path(conn)
  for (attempt in 1:3) {
    # Spark jobs take seconds: checked at least every 0.2 s, they are not
    # found finished half a second late.
    job <- exec_start(conn, spark_call_code(spec, result), timeout = timeout,
                      poll_max = min(conn$options$poll_max, 0.2), call = call)
    res <- if (is.null(spec$progress)) run_job(job, FALSE, call = call)
           else spark_wait(conn, job, spec$progress, call = call)
    m <- parse_marker(exec_output(res), call = call)
    if (identical(m$kind, "NOBOOT")) {
      remote_bootstrap(conn, call = call)
    } else if (identical(m$kind, "NOSPARK")) {
      run_python(conn, spark_module_code(), call = call)
    } else {
      break
    }
  }
  switch(m$kind,
    SPARKOK = parse_spark_fields(m$payload),
    SPARKERR = spark_error(parse_spark_fields(m$payload), spec, call),
    INLINE = unserialize(unwrap(rust_base64_decode(m$payload), call = call)),
    FILE = {
      on.exit(stage_remove_quiet(conn, result), add = TRUE)
      unserialize(stage_fetch(conn, result, progress = FALSE, call = call))
    },
    abort_dbrxr("The cluster gave an unexpected answer to a table operation.",
                "dbrxr_internal_error", problems = substr(m$payload, 1, 300), call = call))
}

# Wait for a scoring command, showing a bar of the Spark tasks done, which the
# cluster writes to the staged file `path` every half second.
spark_wait <- function(conn, job, path, call) {
  bar <- NULL
  last <- Sys.time()
  on.exit({
    if (!is.null(bar)) cli::cli_progress_done(id = bar)
    stage_remove_quiet(conn, path)
  }, add = TRUE)
  tick <- function() {
    if (as.numeric(Sys.time() - last, units = "secs") < 0.5) return()
    last <<- Sys.time()
    tasks <- spark_tasks(conn, path)
    if (length(tasks) == 2L && tasks[2] > 0) {
      if (is.null(bar)) {
        bar <<- cli::cli_progress_bar("Spark tasks", total = tasks[2], .auto_close = FALSE)
      }
      cli::cli_progress_update(id = bar, set = tasks[1], total = tasks[2])
    }
  }
  run_job(job, FALSE, call = call, tick = tick)
}

# c(done, total) from the progress file, or NULL while there is none.
spark_tasks <- function(conn, path) {
  raw <- tryCatch(stage_fetch(conn, path, progress = FALSE), error = function(e) NULL)
  if (is.null(raw)) return(NULL)
  n <- suppressWarnings(as.numeric(strsplit(rawToChar(raw), " ", fixed = TRUE)[[1]]))
  if (anyNA(n)) NULL else n
}

# Form fields where `columns` may repeat.
parse_spark_fields <- function(text) {
  if (!nzchar(text)) return(list())
  pairs <- strsplit(strsplit(text, "&", fixed = TRUE)[[1]], "=", fixed = TRUE)
  dec <- function(x) utils::URLdecode(gsub("+", " ", x, fixed = TRUE))
  keys <- vapply(pairs, function(p) dec(p[[1]]), "")
  vals <- vapply(pairs, function(p) if (length(p) > 1) dec(p[[2]]) else "", "")
  out <- lapply(split(vals, factor(keys, unique(keys))), unname)
  out
}

spark_error <- function(f, spec, call) {
  what <- spec$table %||% "the query"
  switch(f$class %||% "",
    unsupported = abort_dbrxr(
      "The cluster's Python has no PySpark (or PyArrow), so table verbs cannot run.",
      "dbrxr_unsupported_error", problems = f$message,
      hints = c(sprintf("Install them for %s: pip install pyspark pyarrow (and Java 17), or run `make venv` and use .venv/bin/python (DBRXR_PYTHON).", f$python %||% "that Python"),
                "On Databricks, use a cluster runtime with Spark (any all-purpose cluster)."),
      call = call),
    not_found = abort_dbrxr(f$message, c("dbrxr_table_not_found_error", "dbrxr_input_error"),
                            hints = "Check the name (catalog.schema.table) and your grants.",
                            table = what, call = call),
    exists = abort_dbrxr(f$message, c("dbrxr_table_exists_error", "dbrxr_input_error"),
                         hints = "Use `mode = \"overwrite\"` or `\"append\"`, or another name.",
                         table = spec$output, call = call),
    no_schema = abort_dbrxr(f$message, "dbrxr_input_error",
                            hints = "Create it first, e.g. dbx_exec(\"spark.sql('CREATE SCHEMA IF NOT EXISTS main.crm')\").",
                            call = call),
    input = abort_dbrxr(f$message, "dbrxr_input_error", call = call),
    missing_package = abort_dbrxr(f$message, "dbrxr_missing_package_error",
                                  package = f$package,
                                  hints = "Install it on the cluster (remote_install_packages() or remote_library()).",
                                  call = call),
    remote = abort_dbrxr(
      paste0("R error while scoring rows ", f$rows, ": ", f$message), "dbrxr_remote_error",
      problems = c(if (!is.null(f$call)) paste("In", f$call),
                   if (!is.null(f$partition)) {
                     sprintf("Rows are counted in %s as dbx_read_table() returns it; Spark partition %s, rows %s of it.",
                             what, f$partition, f$partition_rows %||% f$rows)
                   } else {
                     sprintf("The first rows of %s (rows %s), scored on the driver before the Spark job.", what, f$rows)
                   }),
      remote_message = f$message, remote_call = f$call, rows = f$rows,
      partition = f$partition, partition_rows = f$partition_rows, call = call),
    abort_dbrxr("A table operation failed on the cluster.", "dbrxr_internal_error",
                problems = f$message, call = call))
}

# For examples: run them only where the local cluster has PySpark.
spark_example_ok <- function() {
  py <- Sys.getenv("DBRXR_PYTHON")
  nzchar(py) && file.exists(py) &&
    identical(suppressWarnings(system2(py, c("-c", shQuote("import pyspark")),
                                       stdout = FALSE, stderr = FALSE)), 0L)
}
