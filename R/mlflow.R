# R models in MLflow and the Unity Catalog registry: remote_log_model() logs
# an R model as an MLflow pyfunc (inst/python/dbrxr_pyfunc.py, models from
# code) and registers it, from inside the cluster's context
# (inst/python/dbrxr_mlflow.py); `models:/name/version` and
# `models:/name@alias` are resolved in the context wherever a model is
# accepted (as_remote_model()); dbx_models() lists the registry.

#' Log an R model to MLflow and register it in Unity Catalog
#'
#' Logs `model` as an MLflow **pyfunc** whose Python code calls R through
#' rpy2, and registers it under `name` (`catalog.schema.model`). Python
#' MLflow runs inside the cluster's execution context and uses the
#' `databricks-uc` registry with the cluster's credentials, on a workspace and
#' on the local cluster alike (which serves the same registry routes; see
#' [local_cluster()]).
#'
#' The model is shipped with dbrxr's protocol (content-addressed: logging the
#' same model again ships no model bytes, and reuses the logged artifacts
#' when nothing else changed). The logged model holds the model's
#' `serialize()` bytes, the `predict()` arguments (`type`, `...`), the
#' `postprocess` function, an input prototype and a record of the R version
#' and packages; its `conda.yaml` lists `r-base` at the cluster's R version.
#' Its `predict()` turns a pandas data frame into an R data frame with the
#' prototype's column classes and factor levels and returns a NumPy array or
#' a pandas data frame, so Python users can
#' `mlflow.pyfunc.load_model("models:/main.crm.churn@champion").predict(df)`
#' on a cluster with R and rpy2.
#'
#' The signature comes from R: input types from the prototype's classes
#' (integer: long, double: double, factor and character: string, logical:
#' boolean, Date and POSIXct: datetime), output types from `predict()` on
#' `input_example`. Unity Catalog requires both, and a three-level name whose
#' catalog and schema exist; they are checked before anything is logged.
#'
#' Errors: `dbrxr_input_error` (a name without three parts, a bad argument,
#' before any network call), `dbrxr_not_found_error` (a catalog or schema
#' that does not exist), `dbrxr_remote_error` (`predict()` failed on the input
#' example; the R error is shown), `dbrxr_unsupported_error` (no MLflow in the
#' cluster's Python), `dbrxr_mlflow_error` (the registry refused).
#'
#' @param model A fitted model, the path of an `.rds` file holding one, a
#'   `dbx_remote_model`, or a `function(newdata)` returning predictions.
#' @param name The registered model's name, `catalog.schema.model`.
#' @param ... Further arguments to `predict()`, kept with the model.
#' @param type Passed to `predict()` as `type` when not `NULL`.
#' @param postprocess A function applied to `predict()`'s value (e.g. to take
#'   one column of a `ranger` probability matrix); the logged model returns a
#'   vector, matrix or data frame.
#' @param prototype A data frame (rows are ignored) whose columns are the
#'   model's inputs, with their classes and factor levels. Defaults to
#'   `input_example`'s columns.
#' @param input_example A few rows of input; stored with the model and
#'   scored at logging time for the output signature. Defaults to the first
#'   rows of `prototype` when it has rows.
#' @param alias An alias to point at the new version, e.g. `"champion"`.
#' @param library The R library the model needs, recorded with it: a
#'   `remote_library()` value (default: the connection's, if any).
#' @param experiment The MLflow experiment (default `/Shared/dbrxr`).
#' @param tags A named list of run tags.
#' @param conn A `dbx_connection`.
#' @param timeout Seconds the whole call may take; see [remote_score()].
#' @return A `dbx_model_version`: `name`, `version`, `alias`, `run_id`,
#'   `uri` (`models:/name/version`), `inputs`, `outputs`, `reused` (the
#'   artifacts of an earlier identical log were registered again).
#' @seealso [dbx_models()]; `models:/...` URIs work in [remote_score()],
#'   [remote_model()] and [remote_score_table()].
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' v <- remote_log_model(fit, "main.demo.mpg", input_example = head(mtcars[c("wt", "hp")]),
#'                       alias = "champion", conn = conn)
#' v
#' remote_score("models:/main.demo.mpg@champion", mtcars, conn = conn)
#' dbx_models(conn)
#' dbx_disconnect(conn)
remote_log_model <- function(model, name, ..., type = NULL, postprocess = NULL, prototype = NULL,
                             input_example = NULL, alias = NULL, library = NULL,
                             experiment = NULL, tags = NULL, conn = dbx_default_connection(),
                             timeout = NULL) {
  call <- rlang::current_env()
  if (missing(model)) abort_dbrxr("`model` is missing.", "dbrxr_input_error", call = call)
  if (missing(name)) abort_dbrxr("`name` is missing.", "dbrxr_input_error", call = call)
  check_not_connection(model, call = call)
  check_uc_model_name(name, call = call)
  check_text(type, call = call)
  check_text(alias, call = call)
  if (!is.null(alias) && !grepl("^[A-Za-z_][A-Za-z0-9_]*$", alias)) {
    abort_dbrxr("`alias` must be letters, digits and underscores, starting with a letter.",
                "dbrxr_input_error", problems = sprintf("Got '%s'.", alias), call = call)
  }
  check_text(experiment, call = call)
  check_number(timeout, min = 0, call = call)
  check_fun(postprocess, call = call)
  if (!is.null(tags) && (!is.list(tags) && !is.character(tags) || is.null(names(tags)) ||
                         any(!nzchar(names(tags))))) {
    abort_dbrxr("`tags` must be a named list of strings.", "dbrxr_input_error", call = call)
  }
  args <- list(...)
  if (!is.null(type)) args$type <- type
  inputs <- model_io(prototype, input_example, call = call)
  logged <- logged_object(model, args, postprocess, inputs$prototype, envir = parent.frame(),
                          call = call)
  check_connection(conn, call = call)
  deadline <- request_deadline(conn, timeout)
  req <- list(op = "log", name = name, hash = logged$hash, columns = inputs$columns,
              input_example = inputs$example, alias = alias, experiment = experiment,
              tags = if (!is.null(tags)) lapply(as.list(tags), as.character),
              library = library_record(library %||% remote_state(conn)$library))
  log_once <- function() {
    ans <- within_limit(remote_object_request(conn, list(op = "put", hash = logged$hash,
                                                         packages = logged$packages),
                                              function() logged$bytes, timeout = time_left(deadline),
                                              call = call),
                        conn, timeout, call = call)
    deliver_answer(ans, call = call)
    remote_target(conn, "mlflow", req, timeout = time_left(deadline),
                  errors = mlflow_errors, call = call)
  }
  res <- log_once()
  if (identical(res, "need_object")) {
    # The context was replaced between shipping and logging: ship again, once.
    rm(list = logged$hash, envir = remote_state(conn)$objects)
    res <- log_once()
  }
  new_dbx_model_version(res, inputs$columns)
}

#' Registered models and their versions
#'
#' Lists the Unity Catalog registry the connection's cluster uses (on the
#' local cluster, its own emulation of it): one row per model version.
#' Printing shows each model's aliases first (which version each names),
#' then its versions; `as.data.frame()` gives the rows.
#'
#' @param conn A `dbx_connection`.
#' @param timeout Seconds the call may take; see [remote_score()].
#' @param name `NULL` (all models), a model (`catalog.schema.model`: a
#'   `dbrxr_model_not_found_error` if there is none) or a schema
#'   (`catalog.schema`: its models).
#' @return A `dbx_models` data frame with columns `name`, `version`
#'   (integer), `aliases` (comma-separated), `status`, `run_id`, `created`
#'   (POSIXct) and `source`.
#' @seealso [dbx_model_versions()] (one model, with signatures),
#'   [dbx_model_alias()]
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_models(conn)
#' dbx_models(conn, name = "main.default")
#' dbx_disconnect(conn)
dbx_models <- function(conn = dbx_default_connection(), timeout = NULL, name = NULL) {
  call <- rlang::current_env()
  check_number(timeout, min = 0, call = call)
  check_text(name, call = call)
  if (!is.null(name) && !grepl("^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*$", name)) {
    check_uc_model_name(name, call = call)
  }
  check_connection(conn, call = call)
  res <- remote_target(conn, "mlflow", list(op = "models", name = name), timeout = timeout,
                       errors = mlflow_errors, call = call)
  cols <- res$columns
  chr <- function(x) as.character(unlist(x) %||% character())
  out <- data.frame(name = chr(cols$name), version = as.integer(chr(cols$version)),
                    aliases = chr(cols$aliases), status = chr(cols$status), run_id = chr(cols$run_id),
                    created = .POSIXct(as.numeric(unlist(cols$created) %||% numeric()) / 1000, tz = "UTC"),
                    source = chr(cols$source), stringsAsFactors = FALSE)
  class(out) <- c("dbx_models", "data.frame")
  out
}

#' @export
print.dbx_models <- function(x, ...) {
  models <- unique(x$name)
  cat(sprintf("<dbx_models> %d model%s, %d version%s\n", length(models),
              if (length(models) == 1L) "" else "s", nrow(x), if (nrow(x) == 1L) "" else "s"))
  for (m in models) {
    rows <- x[x$name == m, , drop = FALSE]
    cat(m, "\n", sep = "")
    for (i in which(nzchar(rows$aliases))) {
      for (a in strsplit(rows$aliases[i], ",", fixed = TRUE)[[1]]) {
        cat(sprintf("  @%-12s -> version %d (%s, %s)\n", a, rows$version[i], rows$status[i],
                    format(rows$created[i], "%Y-%m-%d %H:%M %Z")))
      }
    }
    cat(sprintf("  versions: %s\n", paste(rows$version, collapse = ", ")))
  }
  invisible(x)
}

#' @export
print.dbx_model_version <- function(x, ...) {
  cat(sprintf("<dbx_model_version> %s version %s%s\n", x$name, x$version,
              if (length(x$alias) && nzchar(x$alias)) paste0(" @", x$alias) else ""))
  cat(sprintf("  uri:      %s\n", x$uri))
  cat(sprintf("  run id:   %s%s\n", x$run_id, if (isTRUE(x$reused)) " (artifacts of an identical earlier log)" else ""))
  cat(sprintf("  inputs:   %s\n", paste(sprintf("%s (%s)", names(x$inputs), x$inputs), collapse = ", ")))
  cat(sprintf("  outputs:  %s\n", paste(x$outputs, collapse = ", ")))
  invisible(x)
}

new_dbx_model_version <- function(res, columns) {
  inputs <- vapply(columns, function(c) mlflow_type(c$type), character(1))
  names(inputs) <- vapply(columns, function(c) c$name, character(1))
  structure(list(name = res$name, version = as.integer(res$version), alias = res$alias,
                 run_id = res$run_id, uri = sprintf("models:/%s/%s", res$name, res$version),
                 model_uri = res$model_uri, experiment = res$experiment,
                 inputs = inputs, outputs = as.character(unlist(res$outputs)),
                 reused = isTRUE(res$reused)),
            class = "dbx_model_version")
}

# ---- checks ------------------------------------------------------------------------

uc_name_pattern <- "^[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_]*\\.[A-Za-z_][A-Za-z0-9_-]*$"

check_uc_model_name <- function(name, call) {
  check_text(name, "name", null_ok = FALSE, call = call)
  if (grepl(uc_name_pattern, name)) return(invisible(name))
  parts <- strsplit(name, ".", fixed = TRUE)[[1]]
  hint <- if (length(parts) < 3L && all(grepl("^[A-Za-z_][A-Za-z0-9_-]*$", parts))) {
    sprintf("Unity Catalog names have three parts: catalog.schema.model, e.g. '%s'.",
            paste(c(if (length(parts) == 1L) c("main", "default") else "main", parts), collapse = "."))
  } else {
    "Use catalog.schema.model (letters, digits and underscores), e.g. main.crm.churn."
  }
  abort_dbrxr(sprintf("'%s' is not a Unity Catalog model name.", name), "dbrxr_input_error",
              hints = hint, call = call)
}

r_column_type <- function(x) {
  if (is.factor(x)) return("factor")
  if (inherits(x, "Date")) return("Date")
  if (inherits(x, "POSIXct")) return("POSIXct")
  if (is.object(x)) return(NA_character_)
  if (is.integer(x)) return("integer")
  if (is.double(x)) return("double")
  if (is.character(x)) return("character")
  if (is.logical(x)) return("logical")
  NA_character_
}

mlflow_type <- function(r_type) {
  c(double = "double", integer = "long", factor = "string", character = "string",
    logical = "boolean", Date = "datetime", POSIXct = "datetime")[[r_type]]
}

# The prototype (zero rows), its columns as list(name, type) and the input
# example restricted to them.
model_io <- function(prototype, input_example, call) {
  for (arg in c("prototype", "input_example")) {
    v <- get(arg)
    if (!is.null(v) && !is.data.frame(v)) {
      abort_dbrxr(sprintf("`%s` must be a data frame.", arg), "dbrxr_input_error",
                  problems = sprintf("It is %s.", obj_type(v)), call = call)
    }
  }
  if (is.null(prototype) && is.null(input_example)) {
    abort_dbrxr("The model's inputs are unknown.", "dbrxr_input_error",
                hints = c("Pass `input_example` (a few rows of input) or `prototype`.",
                          "Unity Catalog needs a signature with the inputs and outputs."),
                call = call)
  }
  prototype <- prototype %||% input_example
  if (is.null(input_example)) {
    if (nrow(prototype) == 0L) {
      abort_dbrxr("`input_example` is needed for the signature's outputs.", "dbrxr_input_error",
                  hints = "Pass a few rows of input, e.g. `input_example = head(train)`.", call = call)
    }
    input_example <- utils::head(prototype, 5L)
  }
  types <- vapply(prototype, r_column_type, character(1))
  if (!ncol(prototype) || anyNA(types)) {
    bad <- names(prototype)[is.na(types)]
    abort_dbrxr("The prototype's columns must be numbers, strings, factors, logicals or dates.",
                "dbrxr_input_error",
                problems = if (length(bad)) sprintf("Column '%s' is %s.", bad,
                                                    vapply(prototype[bad], obj_type, character(1)))
                           else "It has no columns.",
                call = call)
  }
  missing <- setdiff(names(prototype), names(input_example))
  if (length(missing)) {
    abort_dbrxr("`input_example` lacks columns of the prototype.", "dbrxr_input_error",
                problems = sprintf("Missing: %s.", paste(missing, collapse = ", ")), call = call)
  }
  proto0 <- prototype[0L, , drop = FALSE]
  attr(proto0, "row.names") <- integer()
  list(prototype = proto0,
       columns = unname(Map(function(n, t) list(name = n, type = t), names(prototype), types)),
       example = input_example[names(prototype)])
}

library_record <- function(lib) {
  if (is.null(lib)) return(NULL)
  list(hash = lib$hash %||% NA_character_, path = lib$path %||% NA_character_)
}

# ---- the logged object ---------------------------------------------------------------

# What the registry holds: a dbrxr_model_bundle (as remote_model() ships) of
# the model with its predict() arguments, postprocess, prototype and
# packages, whose session code defines predict.dbrxr_logged_model() (and the
# user's own functions). The pyfunc and the dispatcher both score it with
# predict().
logged_object <- function(model, args, postprocess, prototype, envir, call) {
  if (is.function(model)) {
    model <- shippable_function(model, call)
    info <- check_transportable(model, "model", call = call)
    packages <- needed_packages(info$namespaces, namespace_refs(model))
    session <- list()
  } else {
    rm <- as_remote_model(model, envir = envir, call = call)
    shipped <- rm$store$model %||% unserialize(model_bytes(rm))
    if (inherits(shipped, "dbrxr_model_bundle")) {
      session <- shipped$session
      model <- shipped$model
    } else {
      session <- list()
      model <- shipped
    }
    packages <- rm$packages
  }
  if (!is.null(postprocess)) {
    postprocess <- shippable_function(postprocess, call)
    pinfo <- check_transportable(postprocess, "postprocess", call = call)
    packages <- needed_packages(packages, pinfo$namespaces, namespace_refs(postprocess))
  }
  ainfo <- check_transportable(args, "...", call = call)
  packages <- setdiff(needed_packages(packages, ainfo$namespaces), base_packages)
  logged <- structure(list(model = model, args = args, postprocess = postprocess,
                           prototype = prototype, packages = packages),
                      class = "dbrxr_logged_model")
  session$predict.dbrxr_logged_model <- logged_predict_method()
  bundle <- structure(list(model = logged, session = session), class = "dbrxr_model_bundle")
  bytes <- serialize(bundle, NULL, xdr = FALSE)
  check_max_bytes(list(model = bundle), size = length(bytes), call = call)
  list(bytes = bytes, hash = unwrap(rust_sha256(bytes)), packages = packages)
}

# predict() of a logged model, defined on the cluster (and in the pyfunc's R)
# as session code: the logged arguments (overridden by the call's), the
# model or function, then postprocess. Its environment is the global one, so
# it travels without dbrxr.
logged_predict_method <- function() {
  f <- function(object, newdata, ...) {
    args <- utils::modifyList(object$args, list(...))
    out <- if (is.function(object$model)) {
      do.call(object$model, c(list(newdata), args))
    } else {
      do.call(function(model, newdata, ...) predict(model, newdata, ...),
              c(list(object$model, newdata), args))
    }
    if (is.null(object$postprocess)) out else object$postprocess(out)
  }
  environment(f) <- globalenv()
  f
}

# ---- models:/ URIs -------------------------------------------------------------------

is_model_uri <- function(x) {
  is.character(x) && length(x) == 1L && !is.na(x) && startsWith(x, "models:/")
}

model_uri_pattern <- "^models:/[^/@]+(/[0-9]+|@[A-Za-z_][A-Za-z0-9_]*)$"

registry_name <- function(uri) sub("^models:/([^/@]+).*$", "\\1", uri)

# A models:/ URI of a version or an alias, its version a registry's number.
check_model_uri <- function(uri, call = rlang::caller_env()) {
  if (!grepl(model_uri_pattern, uri)) {
    abort_dbrxr(sprintf("'%s' is not a registered model URI.", uri), "dbrxr_input_error",
                hints = "Use models:/catalog.schema.model/<version> or models:/catalog.schema.model@<alias>.",
                call = call)
  }
  check_model_version(uri, call = call)
}

# Registry versions are 32-bit: 1 to 2147483647. A larger number is no
# version at all (MLflow's server answers 500 and its client retries it for
# minutes), so it is bad input, refused before any call.
check_model_version <- function(uri, call = rlang::caller_env()) {
  if (!grepl("/[0-9]+$", uri)) return(invisible(uri))
  digits <- sub("^.*/", "", uri)
  v <- suppressWarnings(as.numeric(digits))
  if (is.na(v) || v < 1 || v > .Machine$integer.max) {
    abort_dbrxr(sprintf("'%s' names no model version: versions are whole numbers from 1 to %d.",
                        uri, .Machine$integer.max),
                "dbrxr_input_error", problems = sprintf("The version is %s.", digits),
                hints = "List the versions with `dbx_models()`, or name one by alias: models:/catalog.schema.model@champion.",
                call = call)
  }
  invisible(uri)
}

# A dbx_remote_model for `models:/name/version` or `models:/name@alias`:
# the cluster loads the model from the registry into its object cache (the
# bytes never come here), and the handle names it by hash. `conn`: the
# caller's connection (remote_score_table() passes none: its `conn` is found
# in the calling frames).
registry_model <- function(uri, conn, call) {
  check_model_uri(uri, call = call)
  conn <- conn %||% dynGet("conn", ifnotfound = NULL) %||% dbx_default_connection()
  check_connection(conn, call = call)
  res <- remote_target(conn, "mlflow", list(op = "resolve", uri = uri),
                       errors = mlflow_errors, call = call)
  assign(res$hash, TRUE, envir = remote_state(conn)$objects)
  store <- new.env(parent = emptyenv())
  # Only if the context is replaced (and the model must be sent again) are
  # the bytes needed here: fetched then, by model_bytes(). A function, not an
  # active binding: future's size estimate of a global walks environments,
  # and reading a binding there downloaded the model.
  store$fetch <- function() {
    r <- remote_target(conn, "mlflow", list(op = "resolve", uri = uri, bytes = TRUE),
                       errors = mlflow_errors, call = call)
    r$bytes
  }
  structure(list(hash = res$hash, size = res$size, class = as.character(unlist(res$class)),
                 packages = as.character(unlist(res$packages)),
                 session = "predict.dbrxr_logged_model", conn = conn, store = store,
                 uri = uri, version = as.integer(res$version), path = res$path),
            class = "dbx_remote_model")
}

# ---- errors --------------------------------------------------------------------------

mlflow_errors <- function(err, call) {
  cls <- err$class %||% ""
  msg <- err$message %||% "(no message)"
  hint <- err$hint
  registry_error(err, call)
  switch(cls,
    need_object = "need_object",
    input = abort_dbrxr(msg, "dbrxr_input_error", hints = hint, call = call),
    not_found = abort_dbrxr(msg, "dbrxr_not_found_error", hints = hint, call = call),
    unsupported = abort_dbrxr("MLflow is not available on the cluster.", "dbrxr_unsupported_error",
                              problems = msg, hints = hint, call = call),
    predict_failed = abort_dbrxr("The model's predict() failed on the input example.",
                                 "dbrxr_remote_error", problems = err$remote_message %||% msg,
                                 hints = "Check that `input_example` has the columns and classes the model was fitted on.",
                                 remote_message = err$remote_message %||% msg, call = call),
    NULL)
}

# Examples need a local cluster whose Python has MLflow and PySpark.
mlflow_example_ok <- function() {
  py <- Sys.getenv("DBRXR_PYTHON")
  nzchar(py) && identical(suppressWarnings(system2(py, c("-c", shQuote("import mlflow, pyspark")),
                                                   stdout = FALSE, stderr = FALSE)), 0L)
}
