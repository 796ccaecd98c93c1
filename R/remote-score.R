# remote_score(), remote_model() and predict() for remote models: models are
# shipped once per content hash and kept unserialized on the cluster; newdata
# travels on every call, split into chunks by size when it is large.

#' Score a model on the cluster
#'
#' Runs `predict(model, newdata, type = type, ...)` in R on the cluster and
#' returns its value, which is `identical()` to what `predict()` returns
#' locally: values travel as R `serialize()` bytes, so factors, dates, names,
#' attributes and `NA`s survive.
#'
#' The model is shipped once per connection and content (SHA-256 of its
#' serialized bytes) and kept in the cluster's R session: scoring it again only
#' sends `newdata`. If the execution context was lost (cluster restart, idle
#' eviction), the model is shipped again without you noticing.
#'
#' Before scoring, the packages the model needs (the package of its `predict()`
#' method and any namespace the object refers to) are loaded on the cluster and
#' their versions compared with yours: a missing package is a
#' `dbrxr_missing_package_error` (install it with [remote_install_packages()]),
#' a different version a `dbrxr_version_warning`.
#'
#' `predict()` runs from this session's random number state and the state it
#' leaves comes back, so methods that break ties at random (e.g.
#' `randomForest` with an even number of trees) give the same result after the
#' same `set.seed()`.
#'
#' Large `newdata` (data frames, matrices and vectors) is split into chunks of
#' rows by size, scored in order and reassembled, so the result equals one
#' `predict()` call. Remote output is printed here and remote warnings and
#' messages are re-signalled; an error on the cluster is a `dbrxr_remote_error`.
#'
#' @param model A fitted model, the path of an `.rds` file holding one, a
#'   `dbx_remote_model` from [remote_model()], or a registered model's URI
#'   (`models:/catalog.schema.model/3`, `models:/catalog.schema.model@champion`;
#'   see [remote_log_model()]), loaded by the cluster from the registry.
#' @param newdata The data to score (passed as the second argument of
#'   `predict()`, so matrices for e.g. `glmnet` work too). The model's own
#'   name for it works as well: `newx = x` (glmnet) or `new_data = df`
#'   (tidymodels).
#' @param ... Further arguments to `predict()`, e.g. `s = 0.01` or
#'   `probability = TRUE`.
#' @param type Passed to `predict()` as `type` when not `NULL`.
#' @param conn A `dbx_connection`.
#' @param progress Show a progress bar over chunks: `NULL` (the default) shows
#'   one when interactive or when the connection's `progress` option is `TRUE`.
#' @param timeout Seconds the whole call may take (`NULL`: the connection's
#'   `timeout` option, else no limit). When it runs out, the command is
#'   cancelled on the cluster and a `dbrxr_timeout_error` is raised.
#' @return What `predict()` returns.
#' @seealso [remote_model()] to ship a model once and score it many times.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' fit <- lm(mpg ~ wt + hp, data = mtcars)
#' pred <- remote_score(fit, mtcars, conn = conn)
#' identical(pred, predict(fit, mtcars))
#'
#' fit2 <- glm(am ~ wt, data = mtcars, family = binomial)
#' remote_score(fit2, head(mtcars), type = "response", conn = conn)
#' dbx_disconnect(conn)
remote_score <- function(model, newdata, ..., type = NULL, conn = dbx_default_connection(),
                         progress = NULL, timeout = NULL) {
  call <- rlang::current_env()
  if (missing(model)) {
    abort_dbrxr("`model` is missing.", "dbrxr_input_error", call = call)
  }
  args <- list(...)
  if (missing(newdata)) {
    # The model's own name for it: glmnet's `newx`, tidymodels' `new_data`.
    own <- intersect(c("newx", "new_data"), names(args))
    if (!length(own)) {
      abort_dbrxr("`newdata` is missing.", "dbrxr_input_error",
                  hints = "Pass the data to score as the second argument.", call = call)
    }
    newdata <- args[[own[1]]]
    args[[own[1]]] <- NULL
  }
  check_not_connection(model, call = call)
  check_not_connection(newdata, call = call)
  check_text(type)
  check_flag(progress)
  check_number(timeout, min = 0)
  # One deadline for the whole call: a registry lookup too (R/deadline.R).
  local_call_deadline(timeout %||% getOption("dbrxr.timeout"))
  rm <- as_remote_model(model, envir = parent.frame(), call = call, conn = conn)
  if (!is.null(type)) args$type <- type
  nd_info <- check_transportable(newdata, "newdata", call = call)
  args_info <- check_transportable(args, "...", call = call)
  check_connection(conn)
  packages <- needed_packages(rm$packages, nd_info$namespaces, args_info$namespaces)
  check_max_bytes(list(newdata = newdata, ... = args), call = call)
  within_limit(score_rows(conn, rm, newdata, args, packages, show_progress(progress, conn),
                          deadline = request_deadline(conn, timeout), call = call),
               conn, timeout, call = call)
}

#' Ship a model to the cluster once
#'
#' Serializes `model`, ships it to the cluster's R session (unless it is there
#' already) and returns a small handle: score it with `predict()` or
#' [remote_score()], which then send only the new data. The handle records the
#' model's content hash, size, class and the packages it needs.
#'
#' Functions the model needs that are defined in this session rather than in
#' a package travel with it: S3 methods for its classes (e.g. a
#' `predict.mymodel()` of your own, or for a subclass of `lm`), the functions
#' its formula calls (`lm(y ~ sq(x))`, `nls(y ~ f(x, a, b))`), and the globals
#' those functions use. They are defined in the cluster's global environment
#' before the model is used; `print()` lists them. Functions from packages
#' travel as package requirements instead.
#'
#' The handle's `size` is the number of bytes that travel. Payloads larger
#' than `getOption("dbrxr.max_bytes")` (default 1 GB) are refused before
#' anything is uploaded, with a `dbrxr_input_error` naming the largest parts.
#' When most of a model's bytes are environments it captured (a model fitted
#' inside a function keeps that function's variables), a
#' `dbrxr_size_warning` says so, once per model, with the fix.
#'
#' @param model A fitted model, the path of an `.rds` file holding one, or a
#'   registered model's URI (`models:/name/version`, `models:/name@alias`).
#' @param conn A `dbx_connection`.
#' @param timeout Seconds shipping may take; see [remote_score()].
#' @return A `dbx_remote_model`.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' rm <- remote_model(lm(mpg ~ wt, data = mtcars), conn)
#' rm
#' predict(rm, head(mtcars))
#' dbx_disconnect(conn)
remote_model <- function(model, conn = dbx_default_connection(), timeout = NULL) {
  call <- rlang::current_env()
  check_not_connection(model, call = call)
  check_number(timeout, min = 0)
  rm <- as_remote_model(model, envir = parent.frame(), call = call, conn = conn)
  check_connection(conn)
  rm$conn <- conn
  ans <- within_limit(remote_object_request(conn, list(op = "put", hash = rm$hash, packages = rm$packages),
                                            function() model_bytes(rm), timeout = timeout, call = call),
                      conn, timeout, call = call)
  deliver_answer(ans, call = call)
  rm
}

#' @rdname remote_model
#' @param object A `dbx_remote_model`.
#' @param newdata The data to score.
#' @param ... Further arguments to `predict()` on the cluster (`type`, ...),
#'   `conn` to score on another connection than the model's, and `timeout`
#'   (see [remote_score()]).
#' @export
predict.dbx_remote_model <- function(object, newdata, ...) {
  args <- list(...)
  if (is.null(args$conn) && !is.null(object$conn)) args$conn <- object$conn
  do.call(remote_score, c(list(object, newdata), args))
}

#' @export
print.dbx_remote_model <- function(x, ...) {
  cat(sprintf("<dbx_remote_model> %s\n", paste(x$class, collapse = "/")))
  cat(sprintf("  hash:     %s\n", x$hash))
  cat(sprintf("  size:     %s (the bytes that travel)\n", format_bytes(x$size)))
  cat(sprintf("  packages: %s\n", if (length(x$packages)) paste(x$packages, collapse = ", ")
                                    else "(none beyond base R)"))
  if (length(x$session)) {
    cat(sprintf("  session:  %s (defined in this session; shipped with the model)\n",
                paste(x$session, collapse = ", ")))
  }
  invisible(x)
}

format_bytes <- function(n) {
  units <- c("B", "KB", "MB", "GB")
  i <- max(1L, min(length(units), floor(log(max(n, 1), 1024)) + 1L))
  if (i == 1L) sprintf("%d B", as.integer(n)) else sprintf("%.1f %s", n / 1024^(i - 1L), units[i])
}

# A dbx_remote_model (not yet shipped) for a model object or .rds path. The
# serialized bytes are kept to re-ship after a context loss.
# `envir`: where the caller's own functions are (see session_code()).
# A registered model's URI (`models:/name/version`, `models:/name@alias`) is
# resolved on `conn`'s cluster (R/mlflow.R).
as_remote_model <- function(model, envir = globalenv(), call = rlang::caller_env(), conn = NULL) {
  if (inherits(model, "dbx_remote_model")) return(model)
  if (is_model_uri(model)) return(registry_model(model, conn, call))
  if (is.character(model)) {
    check_text(model, "model", null_ok = FALSE, call = call)
    if (!file.exists(model)) {
      abort_dbrxr(sprintf("Model file '%s' does not exist.", model), "dbrxr_input_error",
                  call = call)
    }
    model <- tryCatch(readRDS(model), error = function(e) {
      abort_dbrxr(sprintf("Could not read a model from '%s'.", model), "dbrxr_input_error",
                  problems = conditionMessage(e), hints = "It must be an .rds file (saveRDS()).",
                  call = call)
    })
  }
  memo <- memo_get(model)
  if (!is.null(memo)) return(memo)
  info <- check_transportable(model, "model", call = call)
  method_pkgs <- predict_method_packages(model, envir)
  if (!isTRUE(attr(method_pkgs, "found")) && !isS4(model)) {
    abort_dbrxr(sprintf("No predict() method for class %s is available here.",
                        paste0("'", class(model), "'", collapse = "/")),
                "dbrxr_input_error",
                hints = c(if (is.data.frame(model) || is.matrix(model))
                            "Is this the data? The model comes first: `remote_score(model, newdata)`.",
                          "Load the package that fitted the model, or define its predict() method in this session."),
                call = call)
  }
  check_max_bytes(list(model = model), call = call)
  sc <- session_code(list(model), envir = envir, call = call)
  shipped <- if (length(sc$values)) {
    structure(list(model = model, session = sc$values), class = "dbrxr_model_bundle")
  } else {
    model
  }
  bytes <- serialize(shipped, NULL, xdr = FALSE)
  check_max_bytes(list(model = model, session = sc$values), size = length(bytes), call = call)
  store <- new.env(parent = emptyenv())
  store$bytes <- bytes
  rm <- structure(list(hash = unwrap(rust_sha256(bytes)), size = length(bytes),
                       class = class(model),
                       packages = needed_packages(method_pkgs, info$namespaces, sc$packages),
                       session = names(sc$values), conn = NULL, store = store),
                  class = "dbx_remote_model")
  if (info$environments > 0L) warn_captured_environments(model, rm, call = call)
  # Session code can be redefined behind the same model object: never remembered.
  if (info$environments == 0L && !length(sc$values)) memo_put(model, rm)
  rm
}

# Scoring the same model object again skips serializing, hashing and walking
# it (milliseconds for a forest). An entry holds a reference to the object, so
# R copies rather than modifies it in place when the user changes it: the same
# address then means the same content. Objects carrying environments (which
# can change behind a reference) are never remembered.
memo_size <- 4L

memo_get <- function(model) {
  addr <- rlang::obj_address(model)
  for (e in the$model_memo) {
    if (identical(e$address, addr) && identical(e$model, model)) {
      rm <- e$rm
      # The bytes are made again, from the same object, only if needed.
      rm$store <- new.env(parent = emptyenv())
      rm$store$model <- model
      return(rm)
    }
  }
  NULL
}

memo_put <- function(model, rm) {
  rm$store <- NULL  # entries keep the model alive, not a second copy as bytes
  entry <- list(address = rlang::obj_address(model), model = model, rm = rm)
  the$model_memo <- utils::head(c(list(entry), the$model_memo), memo_size)
}

restore_seed <- function(seed) {
  if (!is.null(seed)) {
    assign(".Random.seed", seed, envir = globalenv())
  } else if (exists(".Random.seed", envir = globalenv(), inherits = FALSE)) {
    rm(".Random.seed", envir = globalenv())
  }
}

# The model's serialized bytes: kept from the hashing, or made again.
model_bytes <- function(rm) {
  rm$store$bytes %||% (if (!is.null(rm$store$fetch)) rm$store$fetch()) %||%
    serialize(rm$store$model, NULL, xdr = FALSE)
}

show_progress <- function(progress, conn) {
  if (!is.null(progress)) return(progress)
  if (isTRUE(conn$options$progress)) return(TRUE)
  interactive()
}

# Rows of newdata (data frames, 2-d matrices/arrays, plain vectors) can be split.
row_count <- function(x) {
  if (is.data.frame(x) || length(dim(x)) == 2L) return(NROW(x))
  if (is.null(dim(x)) && (is.atomic(x) || is.list(x)) && !is.object(x)) return(length(x))
  NA_integer_
}

# Rows from:to of x.
take_rows <- function(x, from, to) {
  if (identical(class(x), "data.frame")) return(df_rows(x, from, to))
  i <- seq.int(from, to)
  if (is.data.frame(x) || length(dim(x)) == 2L) x[i, , drop = FALSE] else x[i]
}

# x[from:to, , drop = FALSE] for a plain data.frame, without
# `[.data.frame`'s duplicate row name checks (a third of the time); columns
# without attributes are copied by memcpy in Rust (`[` goes element by element).
df_rows <- function(x, from, to) {
  i <- seq.int(from, to)
  rn <- attr(x, "row.names")
  out <- lapply(x, function(col) {
    if (length(dim(col)) == 2L) return(col[i, , drop = FALSE])
    unwrap(rust_slice_rows(col, from, to)) %||% col[i]
  })
  attributes(out) <- attributes(x)
  # Automatic row names (stored compactly) become the row numbers, as in `[`.
  attr(out, "row.names") <- if (.row_names_info(x) < 0L) i else rn[i]
  out
}

score_rows <- function(conn, rm, newdata, args, packages, progress, deadline = NULL, call) {
  n <- row_count(newdata)
  k <- 1L
  if (!is.na(n) && n > 1L) {
    est <- as.numeric(utils::object.size(newdata))
    k <- as.integer(min(n, ceiling(est / chunk_target_bytes())))
  }
  bytes <- function() model_bytes(rm)
  score_req <- function(nd, sync = TRUE) {
    with_seed(list(op = "score", hash = rm$hash, newdata = nd, args = args,
                   packages = packages), sync)
  }
  score_one <- function(nd, report_versions = TRUE) {
    ans <- remote_object_request(conn, score_req(nd), bytes, timeout = time_left(deadline),
                                 call = call)
    if (!report_versions) ans$versions <- NULL
    deliver_answer(ans, call = call)
  }
  if (k <= 1L) return(score_one(newdata))

  bounds <- floor(seq(0, n, length.out = k + 1L))
  chunk <- function(j) take_rows(newdata, bounds[j] + 1L, bounds[j + 1L])
  parts <- vector("list", k)
  if (progress) {
    bar <- cli::cli_progress_bar("Scoring on the cluster", total = k, .envir = call)
    on.exit(cli::cli_progress_done(id = bar, .envir = call), add = TRUE)
  }
  # A pipeline: chunk j+1 is serialized here and uploaded by Rust while chunk
  # j is scored on the cluster. Only the first chunk carries the model (when
  # the cluster may not have it); commands of a context run in order.
  st <- remote_state(conn)
  if (is.null(st$info)) remote_bootstrap(conn, timeout = time_left(deadline), call = call)
  seed0 <- get0(".Random.seed", envir = globalenv(), inherits = FALSE)
  begin <- function(j) {
    req <- score_req(chunk(j), if (j == 1L) TRUE else "keep")
    if (j == 1L && !isTRUE(st$objects[[rm$hash]])) req$object <- bytes()
    request_begin(conn, req, deadline = deadline, call = call)
  }
  pending <- begin(1L)
  on.exit(if (!is.null(pending)) request_cleanup(conn, pending), add = TRUE)
  for (j in seq_len(k)) {
    current <- pending
    pending <- NULL
    request_submit(conn, current)
    if (j < k) pending <- begin(j + 1L)
    ans <- request_finish(conn, current)
    if (identical(ans$status, "need_object")) {
      # The context was lost on the way: ship the model again for this chunk.
      ans <- remote_object_request(conn, score_req(chunk(j), if (j == 1L) TRUE else "keep"),
                                   bytes, timeout = time_left(deadline), call = call)
    } else if (ans$status %in% c("ok", "error")) {
      assign(rm$hash, TRUE, envir = st$objects)
    }
    if (j > 1L) ans$versions <- NULL
    parts[[j]] <- deliver_answer(ans, call = call)
    if (j == 1L && !chunk_combinable(parts[[1]], bounds[2])) {
      # Not a per-row result we know how to join: score everything at once.
      request_cleanup(conn, pending)
      pending <- NULL
      restore_seed(seed0)
      return(score_one(newdata, report_versions = FALSE))
    }
    if (progress) cli::cli_progress_update(id = bar, .envir = call)
  }
  combine_chunks(parts)
}

# Attributes that row-wise joins handle themselves.
structural_attrs <- c("names", "class", "levels", "dim", "dimnames", "row.names")

# Can results shaped like `x` (for `rows` rows) be joined by combine_chunks()?
chunk_combinable <- function(x, rows) {
  if (inherits(x, "ranger.prediction")) return(chunk_combinable(x$predictions, rows))
  if (is.data.frame(x) || length(dim(x)) == 2L) return(NROW(x) == rows)
  if (length(dim(x)) == 1L) return(length(x) == rows)
  if (!is.atomic(x) || length(x) != rows) return(FALSE)
  cls <- class(x)
  known <- is.null(attr(x, "class")) || all(cls %in% c("factor", "ordered", "Date", "POSIXct",
                                                        "POSIXt", "difftime"))
  known
}

# Join per-chunk predict() results so the value equals one call on all rows.
combine_chunks <- function(parts) {
  first <- parts[[1]]
  if (inherits(first, "ranger.prediction")) {
    out <- first
    out$predictions <- combine_chunks(lapply(parts, function(p) p$predictions))
    out$num.samples <- Reduce(`+`, lapply(parts, function(p) p$num.samples))
    return(out)
  }
  if (is.data.frame(first)) {
    out <- do.call(rbind, parts)
    if (is.integer(attr(first, "row.names")) &&
        identical(attr(first, "row.names"), seq_len(nrow(first)))) {
      attr(out, "row.names") <- .set_row_names(nrow(out))
    }
    return(out)
  }
  if (length(dim(first)) == 2L) {
    out <- do.call(rbind, parts)
    return(copy_extra_attrs(out, parts))
  }
  if (length(dim(first)) == 1L) {
    vals <- unlist(lapply(parts, function(p) {
      nm <- dimnames(p)[[1]]
      p <- as.vector(p)
      names(p) <- nm
      p
    }))
    nm <- names(vals)
    dn <- if (!is.null(nm)) stats::setNames(list(nm), names(dimnames(first)))
    out <- array(unname(vals), dim = length(vals), dimnames = dn)
    return(copy_extra_attrs(out, parts))
  }
  rows <- row_number_names(parts)
  if (is.null(rows)) {
    out <- do.call(c, parts)
  } else {
    out <- do.call(c, lapply(parts, unname))
    names(out) <- as.character(seq.int(rows[[1]], rows[[2]]))
  }
  copy_extra_attrs(out, parts)
}

# When every chunk's names are the row numbers, still as R's deferred
# conversion (predict() on a data frame with automatic row names), and the
# chunks follow each other: the first and last row number, else NULL. Joining
# those names with c() would make a string per row; one deferred conversion of
# the whole range is the same value (see src/rust/src/r/row_names.rs).
row_number_names <- function(parts) {
  ranges <- lapply(parts, function(p) {
    nm <- names(p)
    if (is.null(nm)) NULL else unwrap(rust_deferred_row_range(nm))
  })
  if (any(vapply(ranges, is.null, logical(1)))) return(NULL)
  firsts <- vapply(ranges, `[[`, integer(1), 1L)
  lasts <- vapply(ranges, `[[`, integer(1), 2L)
  if (any(firsts[-1L] != lasts[-length(lasts)] + 1L)) return(NULL)
  c(firsts[[1]], lasts[[length(lasts)]])
}

# Per-row attributes (e.g. e1071's "probabilities" matrix) are joined by rows;
# others are kept from the first chunk.
copy_extra_attrs <- function(out, parts) {
  first <- parts[[1]]
  for (nm in setdiff(names(attributes(first)), structural_attrs)) {
    vals <- lapply(parts, attr, which = nm, exact = TRUE)
    lens <- vapply(parts, NROW, numeric(1))
    if (all(vapply(vals, NROW, numeric(1)) == lens) && !is.null(vals[[1]])) {
      v <- if (length(dim(vals[[1]])) == 2L) do.call(rbind, vals) else do.call(c, vals)
    } else {
      v <- vals[[1]]
    }
    attr(out, nm) <- v
  }
  out
}
