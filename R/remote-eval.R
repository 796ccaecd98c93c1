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
#' @param expr An R expression (not evaluated locally).
#' @param conn A `dbx_connection`.
#' @param envir Where to look up the globals of `expr`.
#' @return The value of `expr` on the cluster.
#' @export
#' @examples
#' \donttest{
#' conn <- local_cluster()
#' n <- 10
#' square <- function(x) x^2
#' remote_eval(sum(square(seq_len(n))), conn)
#' remote_eval(R.version.string, conn)
#' dbx_disconnect(conn)
#' }
remote_eval <- function(expr, conn = dbx_default_connection(), envir = parent.frame()) {
  call <- rlang::current_env()
  expr <- substitute(expr)
  if (!is.environment(envir)) {
    abort_dbrxr("`envir` must be an environment.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(envir)), call = call)
  }
  check_connection(conn)
  gl <- find_globals(expr, envir, call = call)
  info <- check_transportable(gl$globals, "the globals of `expr`", call = call)
  packages <- needed_packages(gl$packages, info$namespaces)
  req <- with_seed(list(op = "eval", expr = expr, globals = gl$globals, packages = packages))
  deliver_answer(remote_request(conn, req, call = call), call = call)
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
#' @return A function of class `dbx_remote_function`.
#' @export
#' @examples
#' \donttest{
#' conn <- local_cluster()
#' slow_sum <- function(x, times = 2) sum(x) * times
#' rsum <- remote_function(slow_sum, conn)
#' rsum(1:10)
#' rsum(1:10, times = 3)
#' dbx_disconnect(conn)
#' }
remote_function <- function(f, conn = dbx_default_connection(), packages = NULL) {
  call <- rlang::current_env()
  name <- if (is.name(substitute(f))) as.character(substitute(f)) else "f"
  if (!is.function(f) || is.primitive(f)) {
    abort_dbrxr("`f` must be an R function (not a primitive).", "dbrxr_input_error",
                problems = sprintf("It is %s.", if (is.function(f)) "a primitive" else obj_type(f)),
                call = call)
  }
  if (!is.null(packages) && (!is.character(packages) || anyNA(packages))) {
    abort_dbrxr("`packages` must be a character vector or NULL.", "dbrxr_input_error",
                problems = sprintf("It is %s.", obj_type(packages)), call = call)
  }
  check_connection(conn)
  gl <- find_globals(f, environment(f) %||% globalenv(), call = call)
  bundle <- list(f = f, globals = gl$globals, name = name)
  info <- check_transportable(bundle, "f", call = call)
  bytes <- serialize(bundle, NULL, xdr = FALSE)
  state <- new.env(parent = emptyenv())
  state$conn <- conn
  state$hash <- unwrap(rust_sha256(bytes))
  state$bytes <- bytes
  state$packages <- needed_packages(gl$packages, info$namespaces, extra = packages)
  state$name <- name
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
  info <- check_transportable(args, "the arguments", call = err_call)
  packages <- needed_packages(state$packages, info$namespaces)
  req <- with_seed(list(op = "call", hash = state$hash, args = args, packages = packages))
  ans <- remote_object_request(state$conn, req, function() state$bytes, call = err_call)
  deliver_answer(ans, call = err_call)
}
