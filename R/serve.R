# Model Serving: a registered model version behind a request/response
# endpoint (the Serving Endpoints API). remote_serve() creates the endpoint
# or moves it to another version and waits until it serves it;
# dbx_endpoint_query() scores a data frame there. On the local cluster an
# endpoint runs MLflow's own scoring server (src/rust/src/local/serving.rs).

endpoint_name_pattern <- "^[A-Za-z0-9_-]{1,63}$"

#' Serve a registered model behind an endpoint
#'
#' Creates the Model Serving endpoint `endpoint` serving the registered
#' version `model_uri` names, or, when the endpoint exists, updates its
#' config to that version; then waits until the endpoint serves it. An alias
#' (`models:/main.crm.churn@champion`) is resolved to its version now: moving
#' the alias later changes nothing until `remote_serve()` is called again,
#' which swaps the endpoint to the new version without a failed request.
#'
#' On the local cluster ([local_cluster()]) the endpoint runs MLflow's own
#' scoring server (the app `mlflow models serve --env-manager local` runs)
#' with the cluster's Python and R, so an R model logged by
#' [remote_log_model()] is served as it is logged. On a workspace, Model
#' Serving builds an image from the model's environment files, which must
#' bring R and rpy2: see [dbx_sitrep()] for what is verified.
#'
#' Errors: `dbrxr_input_error` (a bad URI or endpoint name, before any
#' network call), `dbrxr_model_alias_not_found_error` (no such model or
#' alias), `dbrxr_model_version_not_found_error` (no such version, or not
#' READY), `dbrxr_serving_error` (the
#' endpoint could not serve the version; the server's last words are shown),
#' `dbrxr_timeout_error`.
#'
#' @param model_uri `models:/catalog.schema.model/<version>` or
#'   `models:/catalog.schema.model@<alias>`.
#' @param endpoint The endpoint's name: letters, digits, `-` and `_`, at
#'   most 63.
#' @param ... Not used; arguments after it must be named.
#' @param workload_size `"Small"`, `"Medium"` or `"Large"`.
#' @param scale_to_zero Whether the endpoint may scale to zero when idle.
#' @param conn A `dbx_connection`.
#' @param wait Wait until the endpoint serves the version (`FALSE`: return
#'   once the update is accepted).
#' @param timeout Seconds to wait for it (default 30 minutes: a workspace's
#'   first deployment builds an image).
#' @return A `dbx_endpoint`: `name`, `model`, `version`, `model_uri`,
#'   `state`, `config_update`, `url` (the invocations URL), `message`.
#' @seealso [dbx_endpoint_query()], [dbx_endpoints()], [dbx_endpoint_delete()].
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' remote_log_model(fit, "main.demo.mpg", input_example = head(mtcars[c("wt", "hp")]),
#'                  alias = "champion", conn = conn)
#' ep <- remote_serve("models:/main.demo.mpg@champion", "mpg", conn = conn)
#' ep
#' dbx_endpoint_query(ep, head(mtcars[c("wt", "hp")]), conn = conn)
#' dbx_endpoints(conn)
#' dbx_endpoint_delete(ep, conn = conn)
#' dbx_disconnect(conn)
remote_serve <- function(model_uri, endpoint, ..., workload_size = "Small", scale_to_zero = FALSE,
                         conn = dbx_default_connection(), wait = TRUE, timeout = NULL) {
  call <- rlang::current_env()
  if (...length()) {
    abort_dbrxr("Arguments after `endpoint` must be named.", "dbrxr_input_error",
                problems = sprintf("Got %d unnamed or unknown argument%s.", ...length(),
                                   if (...length() == 1L) "" else "s"), call = call)
  }
  if (missing(model_uri)) abort_dbrxr("`model_uri` is missing.", "dbrxr_input_error", call = call)
  check_text(model_uri, null_ok = FALSE, call = call)
  check_model_uri(model_uri, call = call)
  check_endpoint_name(endpoint, call = call)
  check_text(workload_size, null_ok = FALSE, call = call)
  if (!workload_size %in% c("Small", "Medium", "Large")) {
    abort_dbrxr("`workload_size` must be \"Small\", \"Medium\" or \"Large\".", "dbrxr_input_error",
                problems = sprintf("Got \"%s\".", workload_size), call = call)
  }
  check_flag(scale_to_zero, null_ok = FALSE, call = call)
  check_flag(wait, null_ok = FALSE, call = call)
  check_number(timeout, min = 0, call = call)
  check_connection(conn, call = call)
  model <- registry_name(model_uri)
  version <- model_uri_version(conn, model_uri, call = call)
  spec <- list(model, version, workload_size, scale_to_zero)
  current <- tryCatch(serving_call(conn, "get", endpoint, call = call),
                      dbrxr_endpoint_not_found_error = function(e) NULL)
  if (is.null(current)) {
    serving_call(conn, "create", endpoint, spec, call = call)
  } else {
    if (identical(current$state$config_update, "IN_PROGRESS")) {
      # One update at a time: the one in progress ends first (it may be this one).
      current <- endpoint_wait(conn, endpoint, NULL, timeout, call = call)
    }
    if (!serves(current, model, version)) serving_call(conn, "update_config", endpoint, spec, call = call)
  }
  res <- if (wait) endpoint_wait(conn, endpoint, c(model, version), timeout, call = call)
         else serving_call(conn, "get", endpoint, call = call)
  new_dbx_endpoint(res, conn, model_uri)
}

#' Model Serving endpoints
#'
#' @param conn A `dbx_connection`.
#' @return A data frame, one row per endpoint: `name`, `state` (`READY` or
#'   `NOT_READY`), `config_update` (`NOT_UPDATING`, `IN_PROGRESS` or
#'   `UPDATE_FAILED`), `model`, `version` (integer) of the config it serves
#'   (or is deploying), `created` and `updated` (POSIXct).
#' @seealso [remote_serve()]
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_endpoints(conn)
#' dbx_disconnect(conn)
dbx_endpoints <- function(conn = dbx_default_connection()) {
  call <- rlang::current_env()
  check_connection(conn, call = call)
  eps <- serving_call(conn, "list", call = call)
  one <- function(e, f) vapply(eps, f, e)
  entity <- function(e) (e$config %||% e$pending_config)$served_entities[[1]]
  ms <- function(x) .POSIXct(as.numeric(x %||% NA) / 1000, tz = "UTC")
  data.frame(name = one(character(1), function(e) e$name),
             state = one(character(1), function(e) e$state$ready %||% NA_character_),
             config_update = one(character(1), function(e) e$state$config_update %||% NA_character_),
             model = one(character(1), function(e) entity(e)$entity_name %||% NA_character_),
             version = as.integer(one(character(1), function(e) entity(e)$entity_version %||% NA_character_)),
             created = ms(one(double(1), function(e) as.numeric(e$creation_timestamp %||% NA))),
             updated = ms(one(double(1), function(e) as.numeric(e$last_updated_timestamp %||% NA))),
             stringsAsFactors = FALSE)
}

#' Query a Model Serving endpoint
#'
#' Sends `newdata` to the endpoint (MLflow's `dataframe_split` format: doubles
#' exact, factors as their labels, dates as ISO text, `NA` as null) and
#' returns its predictions as R values: a vector (numbers, strings or
#' logicals) with one value per row, or a data frame when the model returns
#' several columns. The values are those of the served model's `predict()`
#' (e.g. `identical()` to `unname(predict(fit, newdata))` for an `lm` logged
#' with [remote_log_model()]); an endpoint's answer carries no row names.
#'
#' @param endpoint An endpoint name or a `dbx_endpoint` from [remote_serve()].
#' @param newdata A data frame with the model's input columns.
#' @param conn A `dbx_connection` (default: the endpoint's, else the default one).
#' @return The predictions.
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS main.demo')", conn)
#' fit <- glm(am ~ wt + hp, data = mtcars, family = binomial)
#' remote_log_model(fit, "main.demo.am", type = "response",
#'                  input_example = head(mtcars[c("wt", "hp")]), conn = conn)
#' remote_serve("models:/main.demo.am/1", "am", conn = conn)
#' dbx_endpoint_query("am", mtcars[1:5, c("wt", "hp")], conn = conn)
#' dbx_endpoint_delete("am", conn = conn)
#' dbx_disconnect(conn)
dbx_endpoint_query <- function(endpoint, newdata, conn = NULL) {
  call <- rlang::current_env()
  name <- endpoint_arg(endpoint, call = call)
  if (missing(newdata) || !is.data.frame(newdata)) {
    abort_dbrxr("`newdata` must be a data frame.", "dbrxr_input_error",
                problems = if (!missing(newdata)) sprintf("It is %s.", obj_type(newdata)), call = call)
  }
  cols <- lapply(newdata, query_column, call = call)
  names(cols) <- names(newdata)
  conn <- conn %||% if (inherits(endpoint, "dbx_endpoint")) endpoint$conn
  conn <- conn %||% dbx_default_connection()
  check_connection(conn, call = call)
  local_call_deadline(default_limit(conn))
  job <- unwrap(rust_serving_query(conn$handle, name, cols), call = call)
  res <- serving_errors(run_job(job, FALSE, call = call), name, call = call)
  predictions_value(res$predictions)
}

#' Delete a Model Serving endpoint
#'
#' Stops the endpoint's servers (on the local cluster, its scoring server's
#' process) and forgets it.
#'
#' @inheritParams dbx_endpoint_query
#' @return `TRUE`, invisibly.
#' @export
#' @examplesIf dbrxr:::mlflow_example_ok()
#' conn <- local_cluster()
#' try(dbx_endpoint_delete("no-such-endpoint", conn = conn))
#' dbx_disconnect(conn)
dbx_endpoint_delete <- function(endpoint, conn = NULL) {
  call <- rlang::current_env()
  name <- endpoint_arg(endpoint, call = call)
  conn <- conn %||% if (inherits(endpoint, "dbx_endpoint")) endpoint$conn
  conn <- conn %||% dbx_default_connection()
  check_connection(conn, call = call)
  serving_call(conn, "delete", name, call = call)
  invisible(TRUE)
}

#' @export
print.dbx_endpoint <- function(x, ...) {
  cat(sprintf("<dbx_endpoint> %s\n", x$name))
  cat(sprintf("  serves:   %s version %s (%s)\n", x$model %||% "?", x$version %||% "?", x$model_uri))
  cat(sprintf("  state:    %s, %s\n", x$state, x$config_update))
  if (nzchar(x$message)) cat(sprintf("  message:  %s\n", x$message))
  cat(sprintf("  url:      %s\n", x$url))
  invisible(x)
}

# ---- helpers -----------------------------------------------------------------------

check_endpoint_name <- function(endpoint, call) {
  if (missing(endpoint)) abort_dbrxr("`endpoint` is missing.", "dbrxr_input_error", call = call)
  check_text(endpoint, null_ok = FALSE, call = call)
  if (!grepl(endpoint_name_pattern, endpoint)) {
    abort_dbrxr(sprintf("'%s' is not a valid endpoint name.", endpoint), "dbrxr_input_error",
                hints = "Use at most 63 letters, digits, dashes and underscores, e.g. \"churn\".",
                call = call)
  }
  invisible(endpoint)
}

endpoint_arg <- function(endpoint, call) {
  if (inherits(endpoint, "dbx_endpoint")) return(endpoint$name)
  check_endpoint_name(endpoint, call = call)
}

# The version a models:/ URI names now (an alias through the registry's route).
model_uri_version <- function(conn, uri, call) {
  if (grepl("/[0-9]+$", uri)) return(sub("^.*/", "", uri))
  alias <- sub("^.*@", "", uri)
  local_call_deadline(default_limit(conn))
  job <- unwrap(rust_registry_alias(conn$handle, registry_name(uri), alias, ""), call = call)
  res <- tryCatch(run_job(job, FALSE, call = call), dbrxr_http_error = function(e) {
    # MLflow's registry says 400 INVALID_PARAMETER_VALUE "... alias x not found".
    unknown <- !is.null(e$not_found) || identical(as.integer(e$status), 400L) && grepl("not found", e$message)
    if (!unknown) stop(e)
    abort_dbrxr(sprintf("No version of %s has the alias '%s'.", registry_name(uri), alias),
                c("dbrxr_model_alias_not_found_error", "dbrxr_not_found_error", "dbrxr_input_error"),
                problems = conditionMessage(e),
                hints = "List the models and their aliases with `dbx_models()`.", call = call, parent = e)
  })
  as.character(res$model_version$version)
}

# One Serving Endpoints operation; an unknown endpoint is classed.
serving_call <- function(conn, op, name = "", spec = list("", "", "Small", FALSE),
                         call = rlang::caller_env()) {
  local_call_deadline(default_limit(conn))
  job <- unwrap(rust_serving_start(conn$handle, op, name, spec[[1]], spec[[2]], spec[[3]], spec[[4]]),
                call = call)
  # A config's 404 is its model version's (one that does not exist, or not READY).
  tryCatch(serving_errors(run_job(job, FALSE, call = call), name, call = call),
           dbrxr_endpoint_not_found_error = function(e) {
             if (!op %in% c("create", "update_config")) stop(e)
             abort_dbrxr(sprintf("Version %s of %s cannot be served.", spec[[2]], spec[[1]]),
                         c("dbrxr_model_version_not_found_error", "dbrxr_not_found_error", "dbrxr_input_error"),
                         problems = conditionMessage(e$parent),
                         hints = "List the versions with `dbx_models()`.", call = call, parent = e$parent)
           })
}

serving_errors <- function(expr, name, call) {
  tryCatch(expr, dbrxr_http_error = function(e) {
    if (!identical(e$not_found, "endpoint")) stop(e)
    abort_dbrxr(sprintf("There is no serving endpoint '%s' in this workspace.", name),
                c("dbrxr_endpoint_not_found_error", "dbrxr_not_found_error", "dbrxr_input_error"),
                problems = conditionMessage(e),
                hints = "List the endpoints with `dbx_endpoints()`; create one with `remote_serve()`.",
                call = call, parent = e)
  })
}

# Whether the endpoint's live config serves this version.
serves <- function(ep, model, version) {
  e <- ep$config$served_entities[[1]]
  !is.null(e) && identical(e$entity_name, model) && identical(as.character(e$entity_version), version) &&
    identical(ep$state$ready, "READY")
}

# Poll until the endpoint is updated (and serves `want` = c(model, version),
# if given); a failed update is a dbrxr_serving_error.
endpoint_wait <- function(conn, name, want, timeout, call) {
  limit <- timeout %||% 1800
  until <- Sys.time() + limit
  told <- FALSE
  repeat {
    ep <- serving_call(conn, "get", name, call = call)
    st <- ep$state
    # A failed update of ours (an earlier one's failure is replaced by ours).
    if (!is.null(want) && identical(st$config_update, "UPDATE_FAILED")) {
      why <- ep$pending_config$served_entities[[1]]$state$deployment_state_message %||% "(no message)"
      abort_dbrxr(sprintf("Endpoint '%s' could not serve the new config.", name), "dbrxr_serving_error",
                  problems = why, hints = "Check that the model loads: mlflow.pyfunc.load_model() of the version.",
                  endpoint = name, call = call)
    }
    if (!identical(st$config_update, "IN_PROGRESS") &&
        (is.null(want) || serves(ep, want[1], want[2]))) {
      return(ep)
    }
    if (Sys.time() > until) {
      abort_dbrxr(sprintf("Endpoint '%s' did not finish its update within %s s.", name, format(limit)),
                  "dbrxr_timeout_error", problems = sprintf("State: %s, %s.", st$ready, st$config_update),
                  hints = "Wait longer with `timeout =`, or check it with `dbx_endpoints()`.",
                  last_status = st$config_update, call = call)
    }
    if (!told && !is.null(want)) {
      told <- TRUE
      cli::cli_inform(c(i = "Waiting for endpoint {.val {name}} to serve {want[1]} version {want[2]}."),
                      class = "dbrxr_progress_message")
    }
    Sys.sleep(0.25)
  }
}

new_dbx_endpoint <- function(ep, conn, model_uri) {
  e <- (ep$config %||% ep$pending_config)$served_entities[[1]]
  host <- conn$info$host %||% conn$local_info$url %||% ""
  structure(list(name = ep$name, model = e$entity_name, version = as.integer(e$entity_version),
                 model_uri = model_uri, state = ep$state$ready %||% NA_character_,
                 config_update = ep$state$config_update %||% NA_character_,
                 message = e$state$deployment_state_message %||% "",
                 url = sprintf("%s/serving-endpoints/%s/invocations", sub("/+$", "", host), ep$name),
                 conn = conn),
            class = "dbx_endpoint")
}

# A column as the scoring server reads it (the pyfunc gives it the
# prototype's class again).
query_column <- function(x, call) {
  if (is.factor(x)) return(as.character(x))
  if (inherits(x, "Date")) return(ifelse(is.na(x), NA_character_, format(x, "%Y-%m-%d")))
  if (inherits(x, "POSIXct")) {
    return(ifelse(is.na(x), NA_character_, format(x, "%Y-%m-%dT%H:%M:%OS6Z", tz = "UTC")))
  }
  if (!is.object(x) && (is.double(x) || is.integer(x) || is.logical(x) || is.character(x))) return(x)
  abort_dbrxr("`newdata`'s columns must be numbers, strings, factors, logicals or dates.",
              "dbrxr_input_error", problems = sprintf("A column is %s.", obj_type(x)), call = call)
}

# {"predictions": [...]} as R values: a vector, or a data frame of records.
predictions_value <- function(p) {
  if (!is.list(p)) return(p)
  if (length(p) && is.list(p[[1]])) {
    cols <- names(p[[1]])
    out <- lapply(cols, function(nm) predictions_value(lapply(p, function(r) r[[nm]])))
    names(out) <- cols
    return(as.data.frame(out, stringsAsFactors = FALSE, optional = TRUE))
  }
  nulls <- vapply(p, is.null, logical(1))
  if (all(nulls)) return(rep(NA, length(p)))
  proto <- p[[which(!nulls)[1]]][0]
  p[nulls] <- list(proto[NA_integer_])
  unlist(p, use.names = FALSE)
}
