# remote_eval() and remote_function(): R code run on the cluster with the
# globals it uses shipped along (as serialized values, never as source).

#' Evaluate an R expression on the cluster
#'
#' Finds the globals `expr` uses in `envir` (variables, and functions defined
#' outside packages together with the globals they use), ships their values,
#' evaluates `expr` in R on the cluster and returns its value. Packages of
#' the functions it calls (and those named as `pkg::fun`) are loaded on the
#' cluster after their versions were compared with yours.
#'
#' The expression runs from this session's random number state (`.Random.seed`)
#' and the state it leaves comes back: `set.seed(1); remote_eval(runif(2))`
#' equals `set.seed(1); runif(2)`.
#'
#' Printed output appears here, remote messages and warnings are re-signalled
#' here (classes `dbrxr_remote_message`, `dbrxr_remote_warning`), and an error
#' becomes a `dbrxr_remote_error` with fields `remote_message`, `remote_call`
#' and `remote_traceback`.
#'
#' Objects among the globals bring the session code they need: S3 methods
#' for their classes defined in this session, and the functions their
#' formulas call (see [remote_model()]).
#'
#' @section Building expressions in code:
#' By default `expr` is taken as written (like [quote()]). Code that builds
#' an expression passes it with `substitute = FALSE`:
#' `f <- function(e) remote_eval(e, substitute = FALSE)`, then
#' `f(quote(sum(1:10)))` is 55. rlang's injection operator works too:
#' `e <- quote(sum(1:10)); remote_eval(!!e)`.
#'
#' @param expr An R expression (not evaluated locally); with
#'   `substitute = FALSE`, a value holding one: a call, a symbol, an
#'   `expression()` (its elements are evaluated in turn, the last one's value
#'   is returned) or a constant.
#' @param conn A `dbx_connection`.
#' @param envir Where to look up the globals of `expr`.
#' @param substitute `TRUE` (the default) takes `expr` as written; `FALSE`
#'   evaluates the argument and uses its value as the expression.
#' @param timeout Seconds the whole call may take (`NULL`: the connection's
#'   `timeout` option, else no limit); then the remote command is cancelled and
#'   a `dbrxr_timeout_error` raised.
#' @return The value of `expr` on the cluster.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' n <- 10
#' square <- function(x) x^2
#' remote_eval(sum(square(seq_len(n))), conn)
#' remote_eval(R.version.string, conn)
#'
#' # Expressions built by code:
#' e <- call("sum", quote(1:10))
#' remote_eval(e, conn, substitute = FALSE)
#' remote_eval(!!e, conn)
#' dbx_disconnect(conn)
remote_eval <- function(expr, conn = dbx_default_connection(), envir = parent.frame(),
                        substitute = TRUE, timeout = NULL) {
  call <- rlang::current_env()
  check_flag(substitute, null_ok = FALSE)
  check_number(timeout, min = 0)
  if (substitute) {
    # rlang's `!!` injects values into `expr`.
    expr <- rlang::enexpr(expr)
    if (is.symbol(expr) && inherits(get0(as.character(expr), envir = envir), "dbx_connection")) {
      check_not_connection(get0(as.character(expr), envir = envir), arg = "expr", call = call)
    }
  } else if (!is.language(expr) && !is.expression(expr) && !(is.atomic(expr) && length(expr) <= 1L)) {
    abort_dbrxr("With `substitute = FALSE`, `expr` must be a language object.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(expr)),
                hints = "Build it with `quote()`, `call()` or `rlang::expr()`.", call = call)
  }
  if (is.expression(expr)) expr <- as.call(c(as.name("{"), as.list(expr)))
  if (!is.environment(envir)) {
    abort_dbrxr("`envir` must be an environment.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(envir)), call = call)
  }
  check_connection(conn)
  gl <- find_globals(expr, envir, call = call)
  info <- check_globals(gl$globals, call = call)
  sc <- session_code(gl$globals, skip = names(gl$globals), envir = envir, call = call)
  check_max_bytes(c(gl$globals, sc$values), call = call)
  warn_large_globals(gl$globals, "The expression", call = call)
  packages <- needed_packages(gl$packages, info$namespaces, sc$packages)
  req <- with_seed(list(op = "eval", expr = expr, globals = gl$globals, session = sc$values,
                        packages = packages))
  within_limit(deliver_answer(remote_request(conn, req, timeout = timeout, call = call), call = call),
               conn, timeout, call = call)
}

# Every global can travel: checked one by one so a problem names the variable.
# Returns what check_transportable() reports, merged.
check_globals <- function(globals, call = rlang::caller_env()) {
  namespaces <- character()
  nms <- names(globals) %||% rep("", length(globals))
  for (i in seq_along(globals)) {
    nm <- if (nzchar(nms[i])) nms[i] else sprintf("..%d", i)
    val <- globals[[i]]
    if (inherits(val, "dbx_connection")) {
      abort_dbrxr(sprintf("`%s` is a dbx_connection, which cannot be used on the cluster.", nm),
                  "dbrxr_input_error",
                  hints = "Pass a connection as `conn = `, outside the expression; the code on the cluster runs there already.",
                  call = call)
    }
    namespaces <- c(namespaces, check_transportable(val, nm, call = call)$namespaces)
  }
  list(namespaces = unique(namespaces))
}

#' Make a function that runs on the cluster
#'
#' Returns a function with the same arguments as `f`; each call evaluates its
#' arguments here, sends them and runs `f` on the cluster. `f` itself (with
#' the globals it uses) is shipped once per connection and cached there.
#'
#' @param f An R function (not a primitive).
#' @param conn A `dbx_connection`.
#' @param packages Extra packages to load on the cluster before each call
#'   (those of functions `f` calls are found automatically).
#' @param timeout Seconds each call of the wrapper may take (`NULL`: the
#'   connection's `timeout` option, else no limit). When it runs out, the
#'   remote command is cancelled and a `dbrxr_timeout_error` raised.
#' @return A function of class `dbx_remote_function`. Printing it shows the
#'   bytes that travel (`f` with its globals) on the first call.
#' @export
#' @examplesIf dbrxr:::local_example_ok()
#' conn <- local_cluster()
#' slow_sum <- function(x, times = 2) sum(x) * times
#' rsum <- remote_function(slow_sum, conn)
#' rsum(1:10)
#' rsum(1:10, times = 3)
#' dbx_disconnect(conn)
remote_function <- function(f, conn = dbx_default_connection(), packages = NULL,
                            timeout = NULL) {
  call <- rlang::current_env()
  name <- if (is.name(substitute(f))) as.character(substitute(f)) else "f"
  check_not_connection(f, call = call)
  if (!is.function(f) || is.primitive(f)) {
    abort_dbrxr("`f` must be an R function (not a primitive).", "dbrxr_input_error",
                problems = sprintf("It is %s.", if (is.function(f)) "a primitive" else obj_type(f)),
                call = call)
  }
  check_chars(packages, call = call)
  check_number(timeout, min = 0)
  check_connection(conn)
  gl <- find_globals(f, environment(f) %||% globalenv(), call = call)
  info <- check_transportable(f, "f", call = call)
  info$namespaces <- c(info$namespaces, check_globals(gl$globals, call = call)$namespaces)
  sc <- session_code(gl$globals, skip = names(gl$globals),
                     envir = environment(f) %||% globalenv(), call = call)
  bundle <- list(f = f, globals = gl$globals, name = name, session = sc$values)
  check_max_bytes(c(list(f = f), gl$globals, sc$values), call = call)
  bytes <- serialize(bundle, NULL, xdr = FALSE)
  check_max_bytes(c(list(f = f), gl$globals), size = length(bytes), call = call)
  state <- new.env(parent = emptyenv())
  state$conn <- conn
  state$hash <- unwrap(rust_sha256(bytes))
  state$bytes <- bytes
  state$packages <- needed_packages(gl$packages, info$namespaces, sc$packages, extra = packages)
  state$name <- name
  state$timeout <- timeout
  state$session <- names(sc$values)
  state$largest <- utils::head(sort(part_sizes(gl$globals), decreasing = TRUE), 3)
  warn_large_globals(gl$globals, sprintf("`%s`", name), size = length(bytes), call = call)
  env <- new.env(parent = asNamespace("dbrxr"))
  env$.dbrxr_state <- state
  wrapper <- rlang::new_function(
    formals(f),
    quote(remote_function_call(.dbrxr_state, environment())),
    env)
  structure(wrapper, class = c("dbx_remote_function", "function"))
}

#' @export
print.dbx_remote_function <- function(x, ...) {
  st <- environment(x)$.dbrxr_state
  cat(sprintf("<dbx_remote_function> %s(%s), runs on the cluster\n", st$name,
              paste(names(formals(x)), collapse = ", ")))
  cat(sprintf("  hash:     %s\n", st$hash))
  cat(sprintf("  size:     %s (f and its globals: the bytes that travel)\n", format_bytes(length(st$bytes))))
  if (length(st$session)) {
    cat(sprintf("  session:  %s (defined in this session; shipped with f)\n",
                paste(st$session, collapse = ", ")))
  }
  if (length(st$packages)) cat(sprintf("  packages: %s\n", paste(st$packages, collapse = ", ")))
  invisible(x)
}

# The body of every remote_function() wrapper: the values of the arguments
# the caller gave (defaults are left to the remote side), then a remote call.
remote_function_call <- function(state, frame) {
  err_call <- rlang::caller_env()
  args <- list()
  for (nm in names(formals(sys.function(-1)))) {
    if (identical(nm, "...")) {
      args <- c(args, eval(quote(list(...)), frame))
    } else if (!eval(call("missing", as.name(nm)), frame)) {
      args[nm] <- list(get(nm, envir = frame))
    }
  }
  timeout <- state$timeout
  info <- check_globals(args, call = err_call)
  check_max_bytes(args, call = err_call)
  packages <- needed_packages(state$packages, info$namespaces)
  req <- with_seed(list(op = "call", hash = state$hash, args = args, packages = packages))
  ans <- within_limit(remote_object_request(state$conn, req, function() state$bytes,
                                            timeout = timeout, call = err_call),
                      state$conn, timeout, call = err_call)
  deliver_answer(ans, call = err_call)
}

# remote_function() says when f and its globals are larger than this.
size_notice_bytes <- function() getOption("dbrxr.size_notice_bytes", 10 * 1024^2)
