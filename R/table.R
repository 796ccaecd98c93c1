# Tables: R data frames to and from Unity Catalog tables, and R models scored
# over tables on the cluster's Spark executors. Each verb is one request of
# the one protocol to the "spark" target (inst/python/dbrxr_spark.py); values
# travel as R serialize() bytes (a data frame up, a model bundle once by
# content hash), never in generated source.

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
  check_text(query, null_ok = FALSE)
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
#' `int` → integer; `bigint` → `bit64::integer64` when bit64 is installed
#' (exact), else double (with a `dbrxr_precision_warning` when a value is beyond
#' 2^53); `float`, `double`, `decimal` → double (with a
#' `dbrxr_precision_warning` when a decimal has more digits than a double holds); `string` → character; `date` → `Date`; `timestamp` → `POSIXct` (time zone
#' UTC, microseconds). Nulls become `NA`; a double `NaN` stays `NaN`. Other
#' types (arrays, maps, structs, binary) are a `dbrxr_input_error`.
#'
#' @section Table names:
#' Every table verb resolves a name as Spark SQL does on the cluster:
#' `catalog.schema.table` names one table; `schema.table` is that schema of
#' the session's current catalog; `table` is in the current schema (`default`
#' unless changed with `USE`). On Databricks the current catalog is the
#' workspace's default one; on the local cluster it is `hive_metastore`, so
#' there `crm.t` and `main.crm.t` are two different tables: write the
#' three-part name to mean the same table in both places. Names are letters,
#' digits and underscores, one to three parts; a missing schema is a
#' `dbrxr_input_error` whose hint creates that schema.
#'
#' @section Errors:
#' A missing table is a `dbrxr_table_not_found_error`. A [dbx_sql()] query
#' that Spark refuses (a parse error, an unknown column) or that fails while
#' it runs (`raise_error()`, an overflow) is a `dbrxr_sql_error` with Spark's
#' fields, as in [databricks_sql()]: `error_class`, `sqlstate`, `statement`
#' and, when Spark gives one, the position (`line`, `pos`).
#'
#' @param table A table name (`catalog.schema.table`, see "Table names") or a
#'   [dbx_sql()] query.
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
  spec$limit <- limit
  # bigint columns: integer64 when bit64 is here to hold them exactly.
  spec$int64 <- if (requireNamespace("bit64", quietly = TRUE)) "integer64" else "double"
  df <- spark_request(conn, spec, timeout = timeout, call = call)
  lost <- attr(df, "dbrxr_int64_inexact")
  if (length(lost)) {
    attr(df, "dbrxr_int64_inexact") <- NULL
    cli::cli_warn(c("bigint column{?s} {.field {lost}} {?has/have} values beyond 2^53, read as doubles with lost precision.",
                    "i" = "Install bit64 to read them exactly as integer64."),
                  class = c("dbrxr_precision_warning", "dbrxr_warning"))
  }
  lost <- attr(df, "dbrxr_decimal_inexact")
  if (length(lost)) {
    attr(df, "dbrxr_decimal_inexact") <- NULL
    cli::cli_warn(c("decimal column{?s} {.field {lost}} {?has/have} values a double does not hold exactly (more than 15 digits): read with lost precision.",
                    "i" = "CAST them to STRING in a {.fn dbx_sql} query to read them exactly."),
                  class = c("dbrxr_precision_warning", "dbrxr_warning"))
  }
  df
}

# Columns a table can hold, checked before anything is sent: names unique
# (also ignoring case, as Spark does) and non-empty, types with a Spark type.
check_table_columns <- function(df, call = rlang::caller_env()) {
  nms <- names(df)
  if (anyNA(nms) || any(!nzchar(nms))) {
    abort_dbrxr("Every column of `df` needs a name.", "dbrxr_input_error",
                problems = sprintf("Column%s %s ha%s none.", if (sum(is.na(nms) | !nzchar(nms)) > 1) "s" else "",
                                   paste(which(is.na(nms) | !nzchar(nms)), collapse = ", "),
                                   if (sum(is.na(nms) | !nzchar(nms)) > 1) "ve" else "s"),
                call = call)
  }
  low <- tolower(nms)
  clash <- unique(low[duplicated(low)])
  if (length(clash)) {
    sets <- vapply(clash, function(l) paste0("`", nms[low == l], "`", collapse = " and "), "")
    abort_dbrxr("Column names of `df` must differ in more than case: Spark does not tell them apart.",
                "dbrxr_input_error", problems = paste("Same name:", sets),
                hints = "Rename the columns (e.g. with make.unique(tolower(names(df))))", call = call)
  }
  for (nm in nms) {
    x <- df[[nm]]
    why <- column_refusal(x)
    if (!is.null(why)) {
      abort_dbrxr(sprintf("Column `%s` cannot be written to a table: %s", nm, why[[1]]),
                  "dbrxr_input_error", hints = why[[2]], column = nm, call = call)
    }
  }
  invisible(df)
}

# Why a column cannot become a Spark column, and what to do; NULL if it can.
column_refusal <- function(x) {
  if (inherits(x, "POSIXlt")) return(list("it is a POSIXlt.", "Convert it with as.POSIXct()."))
  if (inherits(x, "difftime")) {
    return(list(sprintf("it is a difftime (in %s); a table column has no units.", attr(x, "units")),
                "Store the number in the unit you mean, e.g. as.numeric(x, units = \"secs\"), and name the column after the unit."))
  }
  if (is.matrix(x) || is.array(x) || is.data.frame(x)) {
    return(list("it is a matrix or data frame column.", "Split it into one column per column (e.g. cbind() its columns into `df`)."))
  }
  if (is.list(x)) return(list("it is a list column.", "Turn it into atomic columns, or serialize each element to text (e.g. jsonlite::toJSON())."))
  if (is.complex(x)) return(list("it is complex.", "Store Re(x) and Im(x) as two double columns."))
  if (is.raw(x)) return(list("it is raw.", "Store it as text, e.g. as.character(x) or a base64 string."))
  if (inherits(x, c("factor", "Date", "POSIXct", "integer64"))) return(NULL)
  if (is.logical(x) || is.integer(x) || is.double(x) || is.character(x)) return(NULL)
  list(sprintf("it is a %s.", class(x)[1]), "Convert it to logical, integer, double, character, factor, Date, POSIXct or integer64.")
}
#'
#' The inverse of [dbx_read_table()]: `df` travels as R serialize() bytes
#' through the connection's staging location, becomes a parquet file on the
#' cluster (column by column, through Arrow) and then the table.
#'
#' Type mapping (R → Spark): logical → `boolean`; integer → `int`; double →
#' `double`; character and factor → `string`; `Date` → `date`; `POSIXct` →
#' `timestamp`; `bit64::integer64` → `bigint` (exactly). Round trips are
#' `identical()` except: factors come back as character, `POSIXct` comes back
#' in time zone UTC and to the microsecond, `Date`s are whole days, row names
#' and other attributes are dropped.
#'
#' Refused before anything is sent, with a `dbrxr_input_error` naming the column
#' and what to do: `difftime` (a table column has no units: store the number in
#' the unit you mean), `POSIXlt`, matrix, data frame, list, complex and raw
#' columns, and column names that are empty or differ only in case (Spark does
#' not tell them apart). Any other name works (dots, spaces, backticks,
#' non-ASCII letters).
#'
#' `mode = "append"` first checks the rows against the table: the same columns,
#' with types the table's can hold (a smaller integer into a larger one, an
#' integer or float into a double); anything else is a `dbrxr_schema_error`
#' (also a `dbrxr_input_error`) listing each mismatched column with both types,
#' and nothing is written.
#'
#' @param df A data frame.
#' @param name The table name (`catalog.schema.table`, see "Table names");
#'   the schema must exist.
#' @param mode `"error"` (the table must not exist), `"overwrite"` (replace it;
#'   the old one stays intact if the write fails) or `"append"`.
#' @param progress For frames over 10 MB, show what the write is doing
#'   (uploading the rows, then the table job): `TRUE`, `FALSE`, or `NULL`
#'   (the connection's `progress` option, else while interactive).
#' @inheritParams dbx_read_table
#' @inheritSection dbx_read_table Table names
#' @return A `dbx_table` (invisibly).
#' @export
#' @examplesIf dbrxr:::spark_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' dbx_write_table(iris, "main.demo.iris", mode = "overwrite", conn = conn)
#' dbx_disconnect(conn)
dbx_write_table <- function(df, name, mode = c("error", "overwrite", "append"),
                            conn = dbx_default_connection(), timeout = NULL, progress = NULL) {
  call <- rlang::current_env()
  check_not_connection(df, call = call)
  if (!is.data.frame(df)) {
    abort_dbrxr("`df` must be a data frame.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(df)), call = call)
  }
  check_table_name(name, call = call)
  mode <- rlang::arg_match(mode, error_call = call)
  check_connection(conn, call = call)
  df <- as.data.frame(df)
  check_table_columns(df, call = call)
  check_flag(progress, call = call)
  # Small frames are written in a blink: progress only for large ones.
  big <- as.numeric(utils::object.size(df)) > 10 * 1024^2
  res <- spark_request(conn, list(op = "write", output = name, mode = mode, data = df),
                       timeout = timeout, progress = if (big) progress else FALSE, call = call)
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
#' A value in a factor column that the model never saw is an error, as
#' `predict()` on the whole table gives it, never a silent `NA`: a
#' `dbrxr_remote_error` with the model's own message (`lm`, `glm`, `rpart`:
#' "factor g has new level zz"), its fields `column` and `levels`, and the rows;
#' the output table is untouched. `ranger` records its factor levels only with
#' `respect.unordered.factors = "order"` or `"partition"`; its `predict()` then
#' maps a new level to a value silently, and on tables it is the same error.
#' Without recorded levels (ranger's default "ignore" mode) the table's sorted
#' distinct values are the levels, as `predict()` on the whole table does.
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
#' @param output The output table name (see "Table names").
#' @param ... Further arguments to `predict()`.
#' @param type Passed to `predict()` as `type` when not `NULL`.
#' @param keep Names of input columns copied to the output (e.g. an id).
#' @param prediction Name (or prefix) of the prediction columns.
#' @param postprocess A function applied to each batch's `predict()` value.
#'   `NULL` (the default) has built-ins for common models: a `ranger` fit's
#'   `$predictions` (a vector, or one column per class of the probability
#'   matrix), a `glmnet` fit's matrix as a vector (one `s`) or one column per
#'   `s`; a `glmnet` fit is also given each batch as the matrix of its
#'   variables.
#' @param mode `"error"`, `"overwrite"` or `"append"` (see [dbx_write_table()]).
#' @param conn A `dbx_connection`.
#' @param progress Show a progress bar of the Spark tasks done: `TRUE`,
#'   `FALSE`, or `NULL` (the connection's option, else while interactive).
#' @param timeout Seconds before the job is cancelled (`NULL`: none).
#' @inheritSection dbx_read_table Table names
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
  check_not_connection(model, call = call)
  spec <- table_source(table, call = call)
  check_table_name(output, "output", call = call)
  mode <- rlang::arg_match(mode, error_call = call)
  check_chars(keep, call = call)
  check_text(prediction, null_ok = FALSE, call = call)
  check_fun(postprocess, call = call)
  check_connection(conn, call = call)
  args <- list(...)
  if (!is.null(type)) args$type <- type
  bundle <- score_bundle(model, args, postprocess, prediction, call = call)
  spec$op <- "score"
  spec$output <- output
  spec$mode <- mode
  spec$keep <- keep
  spec$level_cols <- bundle$level_cols
  spec$hash <- bundle$hash
  spec$registry <- bundle$registry_hash
  if (is.null(bundle$registry_hash)) spec$registry_uri <- bundle$registry_uri  # resolved there
  spec$convert <- getOption("dbrxr.table_convert")  # "pandas2ri": benchmarks only
  # The bundle's bytes go along only when the cluster may not have them: the
  # target keeps them under their hash in the staging location's cache.
  st <- remote_state(conn)
  deadline <- request_deadline(conn, timeout)
  send <- function(with_bundle) {
    spec$bundle <- if (with_bundle) bundle$bytes
    spark_request(conn, spec, timeout = time_left(deadline), progress = progress,
                  call = call, need_object = !with_bundle)
  }
  res <- send(!isTRUE(st$objects[[bundle$hash]]))
  if (inherits(res, "dbrxr_need_object")) {
    # A registered model the context no longer holds: load it there again.
    if (!is.null(bundle$registry_uri)) as_remote_model(bundle$registry_uri, call = call, conn = conn)
    res <- send(TRUE)
  }
  assign(bundle$hash, TRUE, envir = st$objects)
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
  registry <- NULL
  if (is.function(model)) {
    model <- shippable_function(model, call)
    info <- check_transportable(model, "model", call = call)
    packages <- needed_packages(info$namespaces, namespace_refs(model))
  } else if (!is.null(registry <- registered_model(model, call))) {
    # A registered model stays on the cluster: the bundle names it by hash
    # and the executors read it from the cluster's cache (as a function:
    # its logged predict() arguments and postprocess come with it).
    model <- NULL
    packages <- registry$packages
  } else {
    rm <- as_remote_model(model, call = call)
    if (is.character(model) || inherits(model, "dbx_remote_model")) {
      model <- rm$store$model %||% unserialize(model_bytes(rm))
    }
    packages <- rm$packages
    if (is.null(postprocess)) postprocess <- builtin_postprocess(model)
    if (inherits(model, "glmnet")) model <- glmnet_on_frames(model)
  }
  if (!is.null(postprocess)) {
    postprocess <- shippable_function(postprocess, call)
    pinfo <- check_transportable(postprocess, "postprocess", call = call)
    packages <- needed_packages(packages, pinfo$namespaces, namespace_refs(postprocess))
  }
  levels <- if (is.null(model)) list() else model_levels(model)
  b <- list(model = model, registry = registry$hash, args = args, postprocess = postprocess,
            levels = levels, packages = setdiff(packages, base_packages),
            prediction = prediction)
  bytes <- serialize(b, NULL, xdr = FALSE)
  list(bytes = bytes, hash = unwrap(rust_sha256(bytes)),
       level_cols = if (!is.null(model)) setdiff(model_inputs(model), names(levels)),
       registry_uri = if (is.null(registry$hash)) registry$uri
                      else sprintf("models:/%s/%d", registry_name(registry$uri), registry$version),
       registry_hash = registry$hash)
}

# The dbx_remote_model of a registered model (a models:/ URI, or a handle
# from one), loaded into the context; NULL for any other model.
registered_model <- function(model, call) {
  if (!is_model_uri(model) && !(inherits(model, "dbx_remote_model") && !is.null(model$uri))) {
    return(NULL)
  }
  # Recorded for a job: its task resolves the URI each time it runs (so an
  # alias names the version of that moment, as a scheduled run needs).
  if (is_model_uri(model) && isTRUE(getOption("dbrxr.recording_targets"))) {
    return(list(uri = model, hash = NULL, packages = character()))
  }
  as_remote_model(model, call = call)
}

# predict() values of common models that are not yet columns: ranger's list
# (its `$predictions`: a vector, or the probability matrix) and glmnet's
# one-column matrix (a vector; several `s` stay a matrix, one column each).
# Made here so the function's environment is the base one and nothing travels.
builtin_postprocess <- function(model) {
  fn <- if (inherits(model, "ranger")) {
    function(value) if (inherits(value, "ranger.prediction")) value$predictions else value
  } else if (inherits(model, "glmnet")) {
    function(value) if (is.matrix(value) && ncol(value) == 1L) value[, 1L] else value
  }
  if (!is.null(fn)) environment(fn) <- baseenv()
  fn
}

# glmnet predicts from a matrix (`newx`), batches are data frames: score the
# fit's own variables as a matrix.
glmnet_on_frames <- function(fit) {
  beta <- if (is.list(fit$beta)) fit$beta[[1]] else fit$beta
  env <- new.env(parent = baseenv())
  env$fit <- fit
  env$vars <- rownames(beta)
  f <- function(newdata, ...) stats::predict(fit, as.matrix(newdata[, vars, drop = FALSE]), ...)
  environment(f) <- env
  f
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

# The schema part of a table name, as Spark resolves it: `catalog.schema` of a
# three-part name, `schema` of a two-part one (in the current catalog), NULL
# for a one-part name (the current schema) or no name.
schema_of <- function(name) {
  if (!is.character(name) || length(name) != 1L) return(NULL)
  parts <- strsplit(name, ".", fixed = TRUE)[[1]]
  if (length(parts) < 2L) return(NULL)
  paste(parts[-length(parts)], collapse = ".")
}

name_pattern <- "^[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"

check_table_name <- function(x, arg = rlang::caller_arg(x), call = rlang::caller_env()) {
  check_not_connection(x, arg = arg, call = call)
  check_text(x, arg = arg, null_ok = FALSE, call = call)
  if (!grepl(name_pattern, x)) {
    abort_dbrxr(sprintf("`%s` is not a table name.", arg), "dbrxr_input_error",
                problems = sprintf("Got '%s'.", x),
                hints = "Use catalog.schema.table (letters, digits and underscores), e.g. main.crm.customers.",
                call = call)
  }
  invisible(x)
}

table_source <- function(table, call) {
  check_not_connection(table, call = call)
  if (inherits(table, "dbx_sql")) return(list(query = table$query))
  # A dbplyr lazy table (over a databricks_sql() connection): its query.
  if (inherits(table, "tbl_lazy")) return(list(query = as.character(dbplyr::sql_render(table))))
  check_table_name(table, call = call)
  list(table = table)
}

# ---- one table request ----------------------------------------------------------

# The answer to a score request that did not carry its bundle, when the
# cluster does not have it.
need_object_answer <- structure(list(), class = "dbrxr_need_object")

# One request to the spark target; its errors become the verbs' conditions.
spark_request <- function(conn, spec, timeout = NULL, progress = FALSE, call = rlang::caller_env(),
                          need_object = FALSE) {
  errors <- function(err, call) {
    if (need_object && identical(err$class, "need_object")) return(need_object_answer)
    spark_error(err, spec, call)
  }
  withCallingHandlers(
    remote_target(conn, "spark", spec, timeout = timeout, progress = progress,
                  errors = errors, call = call),
    interrupt = function(i) say_table_unchanged(spec))
}

# After Ctrl-C in a write or a scoring job: the output is written aside and
# swapped in only at the end (appends commit only at the end), so the table
# the user had is still there.
say_table_unchanged <- function(spec) {
  out <- spec$output
  if (is.null(out)) return(invisible())
  text <- if (identical(spec$mode, "error")) sprintf("Table %s was not created.", out)
          else sprintf("Table %s is unchanged: the previous table is still there.", out)
  try(cli::cli_inform(c("i" = cli_escape(text)), class = "dbrxr_cancelled_message"), silent = TRUE)
}

spark_error <- function(f, spec, call) {
  what <- spec$table %||% "the query"
  registry_error(f, call)  # a job's models:/ URI resolved as it runs
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
                            hints = sprintf("Create it first: dbx_exec(\"spark.sql('CREATE SCHEMA IF NOT EXISTS %s')\").",
                                            schema_of(spec$output %||% spec$table) %||% "catalog.schema"),
                            call = call),
    input = abort_dbrxr(f$message, "dbrxr_input_error", call = call),
    sql = sql_target_error(f, call),
    schema = abort_dbrxr(sprintf("The rows do not fit table %s; nothing was written.", spec$output),
                         c("dbrxr_schema_error", "dbrxr_input_error"),
                         problems = unlist(f$problems),
                         hints = "Make the columns and types match the table's (see dbx_read_table(limit = 0)), or write with `mode = \"overwrite\"`.",
                         table = spec$output, call = call),
    missing_package = abort_dbrxr(f$message, "dbrxr_missing_package_error",
                                  package = f$package,
                                  hints = "Install it on the cluster (remote_install_packages() or remote_library()).",
                                  call = call),
    remote = abort_dbrxr(
      paste0("R error while scoring rows ", f$rows, ": ", f$message), "dbrxr_remote_error",
      problems = c(if (!is.null(f$call)) paste("In", f$call),
                   if (!is.null(f$unseen_column)) {
                     sprintf("Column %s has values the model never saw: %s (rows %s of the batch).",
                             f$unseen_column, f$unseen_levels, f$unseen_rows)
                   },
                   if (!is.null(f$partition)) {
                     sprintf("Rows are counted in %s as dbx_read_table() returns it; Spark partition %s, rows %s of it.",
                             what, f$partition, f$partition_rows %||% f$rows)
                   } else {
                     sprintf("The first rows of %s (rows %s), scored on the driver before the Spark job.", what, f$rows)
                   }),
      remote_message = f$message, remote_call = f$call, rows = f$rows,
      partition = f$partition, partition_rows = f$partition_rows,
      column = f$unseen_column, levels = f$unseen_levels, call = call),
    abort_dbrxr("A table operation failed on the cluster.", "dbrxr_internal_error",
                problems = f$message, remote_traceback = f$traceback, call = call))
}

# For examples: run them only where the local cluster has PySpark.
spark_example_ok <- function() {
  py <- Sys.getenv("DBRXR_PYTHON")
  nzchar(py) && file.exists(py) &&
    identical(suppressWarnings(system2(py, c("-c", shQuote("import pyspark")),
                                       stdout = FALSE, stderr = FALSE)), 0L)
}
