# What an object, expression or function needs on the cluster: packages (with
# their local versions) and whether it can travel at all. Also the comparison
# of local and remote package versions.

# Packages that ship with R itself: always present, versions follow R's.
base_packages <- c("base", "compiler", "datasets", "graphics", "grDevices", "grid",
                   "methods", "parallel", "splines", "stats", "stats4", "tcltk",
                   "tools", "utils")

# Walk everything serialize() would write for `x`: list elements, attributes,
# closures (formals, body, environment) and environments up to the global,
# package and namespace environments, which serialize as references by name.
# Returns the paths of external pointers, the namespaces `x` needs (a
# package function's namespace, an S4 class's package), the namespaces only
# reached as an environment's parent (`chained`: a model fitted in a
# package's test has a formula environment whose parents lead to the
# package's namespace; unserialize() replaces a missing one by the global
# environment, so they are not required) and how many (mutable) environments
# travel with `x`.
inspect_object <- function(x, label = "x") {
  seen <- list()
  ptrs <- character()
  namespaces <- character()
  chained <- character()
  visits <- 0L
  walk <- function(x, path, closure_env = FALSE) {
    visits <<- visits + 1L
    if (typeof(x) == "externalptr") {
      ptrs <<- c(ptrs, path)
      return()
    }
    if (is.environment(x)) {
      if (isNamespace(x) && !closure_env) {
        chained <<- c(chained, getNamespaceName(x))
        return()
      }
      walk_env(x, path, closure_env)
      return()
    }
    if (isS4(x) || !is.null(attr(class(x), "package"))) {
      pkg <- attr(class(x), "package")
      if (is.character(pkg) && length(pkg) == 1L) namespaces <<- c(namespaces, pkg)
    }
    at <- attributes(x)
    at[[".internal.selfref"]] <- NULL  # data.table's pointer, rebuilt on arrival
    for (nm in names(at)) walk(at[[nm]], sprintf("attr(%s, \"%s\")", path, nm))
    switch(typeof(x),
      closure = {
        walk(formals(x), sprintf("formals(%s)", path))
        walk(environment(x), sprintf("environment(%s)", path), closure_env = TRUE)
      },
      list = , expression = , pairlist = {
        nms <- names(x)
        for (i in seq_along(x)) {
          if (is_empty_arg(x, i)) next
          el <- .subset2(x, i)  # no `[[` method: numeric_version recurses forever
          if (is.null(el) || (is.atomic(el) && is.null(attributes(el)))) next
          sub <- if (!is.null(nms) && nzchar(nms[i])) sprintf("%s$%s", path, nms[i])
                 else sprintf("%s[[%d]]", path, i)
          walk(el, sub)
        }
      },
      NULL)
  }
  # closure: `env` is (a parent of) a function's environment. Its code may
  # call its namespace's internals, so a namespace there is needed.
  walk_env <- function(env, path, closure = FALSE) {
    if (isNamespace(env)) {
      namespaces <<- c(namespaces, getNamespaceName(env))
      return()
    }
    if (identical(env, globalenv()) || identical(env, baseenv()) ||
        identical(env, emptyenv()) || startsWith(environmentName(env), "package:")) {
      return()
    }
    # A dbrxr connection in a frame a model or function was made in travels
    # along (its handle arrives dead, its secrets stay in Rust): not a pointer
    # the shipped code could use.
    if (inherits(env, "dbx_connection")) return()
    for (s in seen) if (identical(s, env)) return()
    seen[[length(seen) + 1L]] <<- env
    for (nm in ls(env, all.names = TRUE, sorted = FALSE)) {
      # `...` of a function frame cannot be got (and may be missing).
      if (identical(nm, "...") || bindingIsActive(nm, env)) next
      walk(get(nm, envir = env, inherits = FALSE), sprintf("%s$%s", path, nm))
    }
    parent <- parent.env(env)
    if (isNamespace(parent) && !closure) {
      chained <<- c(chained, getNamespaceName(parent))
      return()
    }
    walk_env(parent, sprintf("parent.env(%s)", path), closure)
  }
  walk(x, label)
  namespaces <- unique(namespaces)
  list(externalptrs = unique(ptrs), namespaces = namespaces,
       chained = setdiff(unique(chained), namespaces), environments = length(seen))
}

# The empty symbol (a missing argument) cannot be bound to a variable.
is_empty_arg <- function(x, i) identical(x[[i]], quote(expr = ))

# dbrxr_input_error when `x` holds something that cannot be serialized to
# another process (an external pointer to memory of this R session).
check_transportable <- function(x, label, info = inspect_object(x, label),
                                call = rlang::caller_env()) {
  if (length(info$externalptrs)) {
    where <- utils::head(info$externalptrs, 3)
    abort_dbrxr(sprintf("`%s` cannot be sent to the cluster: it holds an external pointer.", label),
                "dbrxr_input_error",
                problems = paste0("External pointer at `", where, "`."),
                hints = c("External pointers refer to memory of this R session (e.g. a model handle of a C/C++ library or a database connection); they do not survive serialize().",
                          if (identical(label, "model"))
                            "Use the package's own save/serialize function (e.g. `xgboost::xgb.save.raw()`), or fit the model on the cluster with `remote_eval()`."
                          else
                            "Create it on the cluster instead: inside the expression or function (e.g. open the connection there)."),
                path = info$externalptrs, call = call)
  }
  invisible(info)
}

# Packages providing predict() methods for `model`'s classes (every class, so
# a session-defined method for a subclass of `lm` still needs stats), with
# whether any method was found at all (in a package or the session).
predict_method_packages <- function(model, envir = globalenv()) {
  pkgs <- character()
  found <- FALSE
  for (cls in class(model)) {
    m <- utils::getS3method("predict", cls, optional = TRUE, envir = envir)
    if (is.null(m)) next
    found <- TRUE
    env <- environment(m) %||% baseenv()
    if (isNamespace(env)) pkgs <- c(pkgs, getNamespaceName(env))
  }
  structure(unique(unname(pkgs)), found = found)
}

# Packages named as pkg::fun or pkg:::fun in code (expressions, function bodies).
namespace_refs <- function(code) {
  found <- character()
  visit <- function(e) {
    if (is.call(e)) {
      head <- e[[1]]
      if ((identical(head, as.name("::")) || identical(head, as.name(":::"))) &&
          length(e) == 3L) {
        found <<- c(found, as.character(e[[2]]))
        return()
      }
      visit_all(as.list(e))
    } else if (is.function(e) && !is.primitive(e)) {
      visit(body(e))
      visit_all(as.list(formals(e)))
    } else if (is.expression(e) || is.pairlist(e) || (is.list(e) && !is.object(e))) {
      visit_all(as.list(e))
    }
  }
  visit_all <- function(parts) {
    for (i in seq_along(parts)) if (!is_empty_arg(parts, i)) visit(parts[[i]])
  }
  visit(code)
  unique(found)
}

# Globals of `expr` evaluated in `envir`, with the packages they come from.
# Functions found in the global environment (and the globals they use) are
# shipped; functions from packages are not: their packages are loaded remotely.
find_globals <- function(expr, envir, call = rlang::caller_env()) {
  gl <- tryCatch(
    globals::globalsOf(expr, envir = envir, mustExist = FALSE, method = "ordered"),
    error = function(e) {
      abort_dbrxr("Could not determine the globals of the expression.", "dbrxr_input_error",
                  problems = conditionMessage(e), call = call)
    })
  pkgs <- globals::packagesOf(gl)
  gl <- globals::cleanup(gl)
  values <- as.list(unclass(gl))
  attr(values, "where") <- NULL
  fns <- Filter(is.function, values)
  pkgs <- c(pkgs, namespace_refs(expr), unlist(lapply(fns, namespace_refs)))
  list(globals = values, packages = unique(pkgs))
}

# The packages a value needs remotely, beyond those named explicitly. Never
# dbrxr: its cluster-side code is shipped by the protocol, not installed.
needed_packages <- function(..., extra = character()) {
  pkgs <- unique(c(extra, unlist(list(...))))
  pkgs <- pkgs[!is.na(pkgs) & nzchar(pkgs)]
  setdiff(pkgs, c("base", "dbrxr"))
}

# Local versions of `pkgs` (NA when not installed here). Reading DESCRIPTION
# files costs about a millisecond per package and call, so versions are
# remembered per library path set (a package upgraded in place shows after
# R restarts).
local_versions <- function(pkgs) {
  key <- paste(.libPaths(), collapse = "\n")
  if (!identical(the$versions_key, key)) {
    the$versions_key <- key
    the$versions <- new.env(parent = emptyenv())
  }
  v <- vapply(pkgs, function(p) {
    known <- the$versions[[p]]
    if (!is.null(known)) return(known)
    ver <- tryCatch(as.character(utils::packageVersion(p)), error = function(e) NA_character_)
    if (!is.na(ver)) assign(p, ver, envir = the$versions)
    ver
  }, character(1))
  stats::setNames(v, pkgs)
}

# Compare named version vectors. `remote` NA = missing on the cluster.
# Packages that ship with R are never reported as different.
compare_versions <- function(local, remote) {
  pkgs <- names(remote)
  missing <- pkgs[is.na(remote)]
  both <- setdiff(intersect(pkgs, names(local)[!is.na(local)]), c(missing, base_packages))
  differ <- both[vapply(both, function(p) {
    utils::compareVersion(local[[p]], remote[[p]]) != 0
  }, logical(1))]
  list(missing = missing,
       different = data.frame(package = differ, local = unname(local[differ]),
                              remote = unname(remote[differ]), stringsAsFactors = FALSE))
}

# Raise for missing packages, warn for different versions.
# Remote versions that matched the local ones (for these library paths) are
# remembered, so the warm path of a call does not compare them again.
report_versions <- function(remote, call = rlang::caller_env()) {
  if (!length(remote)) return(invisible())
  key <- paste(c(.libPaths(), names(remote), remote), collapse = "\n")
  if (isTRUE(the$versions_ok[[key]])) return(invisible())
  cmp <- compare_versions(local_versions(names(remote)), remote)
  if (!length(cmp$missing) && !nrow(cmp$different)) {
    if (is.null(the$versions_ok)) the$versions_ok <- new.env(parent = emptyenv())
    assign(key, TRUE, envir = the$versions_ok)
  }
  if (length(cmp$missing)) {
    pkgs <- cmp$missing
    abort_dbrxr(sprintf("Package%s not installed on the cluster: %s.",
                        if (length(pkgs) > 1) "s" else "", paste(pkgs, collapse = ", ")),
                "dbrxr_missing_package_error",
                hints = missing_package_hint(pkgs),
                package = pkgs, call = call)
  }
  d <- cmp$different
  for (i in seq_len(nrow(d))) {
    msg <- sprintf("Package '%s' is %s here but %s on the cluster; results may differ.",
                   d$package[i], d$local[i], d$remote[i])
    rlang::warn(msg, class = "dbrxr_version_warning", package = d$package[i],
                local_version = d$local[i], remote_version = d$remote[i])
  }
  invisible(cmp)
}

# Session code: functions defined outside packages that objects need on the
# cluster (S3 methods for their classes, the functions their formulas call),
# with the globals those functions use. They are defined in the cluster's
# global environment before the object is used, where S3 dispatch and
# model.frame() (which evaluates in the formula's environment) look for them.
# Returns list(values, packages): `values` named, ready to ship.
session_code <- function(objects, skip = character(), envir = globalenv(),
                         call = rlang::caller_env()) {
  fns <- list()
  pkgs <- character()
  for (obj in objects) {
    if (!is.object(obj) || is.function(obj) || is.environment(obj)) next
    fns <- c(fns, session_methods(class(obj), envir), formula_functions(obj))
    pkgs <- c(pkgs, formula_packages(obj))
  }
  fns <- fns[!duplicated(names(fns)) & !names(fns) %in% skip]
  if (!length(fns)) return(list(values = list(), packages = unique(pkgs)))
  values <- fns
  for (nm in names(fns)) {
    f <- fns[[nm]]
    gl <- find_globals(f, environment(f) %||% globalenv(), call = call)
    pkgs <- c(pkgs, gl$packages)
    more <- gl$globals[!names(gl$globals) %in% c(names(values), skip)]
    # Package functions travel as package requirements, not as values.
    more <- more[!vapply(more, is_package_function, logical(1))]
    values <- c(values, more)
  }
  list(values = values, packages = unique(pkgs))
}

# A package's own function: its environment is the namespace (or a
# primitive). Closures made elsewhere (the session, a test, a function's
# frame) are shipped, even when their environments lead to a namespace.
is_package_function <- function(f) {
  is.function(f) && (is.primitive(f) || isNamespace(environment(f)))
}

is_session_function <- function(f) is.function(f) && !is_package_function(f)

# Environments where a user's own definitions live: those from `envir` (the
# caller's: a function, a test, a script sourced into an environment) up to
# the first namespace or the global environment, the global environment, and
# attached environments that are not packages (attach(), sys.source()).
session_envs <- function(envir = globalenv()) {
  chain <- list()
  env <- envir
  while (!identical(env, globalenv()) && !identical(env, emptyenv()) && !isNamespace(env) &&
         !identical(env, baseenv()) && length(chain) < 50L) {
    chain[[length(chain) + 1L]] <- env
    env <- parent.env(env)
  }
  nms <- search()
  keep <- nms == ".GlobalEnv" | !(startsWith(nms, "package:") | nms %in% c("Autoloads", "tools:rstudio"))
  c(chain, lapply(which(keep), as.environment))
}

# Session-defined S3 methods (`generic.class`) for `classes`, found by name in
# the session environments, plus registered predict() methods defined outside
# packages.
session_methods <- function(classes, envir = globalenv()) {
  out <- list()
  suffixes <- paste0(".", classes)
  for (env in session_envs(envir)) {
    for (nm in ls(env, all.names = TRUE)) {
      if (!any(endsWith(nm, suffixes) & nchar(nm) > nchar(suffixes))) next
      f <- get0(nm, envir = env, inherits = FALSE)
      if (is_session_function(f) && is.null(out[[nm]])) out[[nm]] <- f
    }
  }
  for (cls in classes) {
    nm <- paste0("predict.", cls)
    m <- utils::getS3method("predict", cls, optional = TRUE, envir = envir)
    if (is_session_function(m) && is.null(out[[nm]])) out[[nm]] <- m
  }
  out
}

# Session functions called by a model's formula, terms or fitting call
# (formulas only: `lm(y ~ sq(x))`, `nls(y ~ f(x, a, b))`, `loess(y ~ sq(x))`).
formula_functions <- function(model) {
  out <- list()
  for (f in model_formulas(model)) {
    env <- if (inherits(f, "formula")) environment(f) else NULL
    env <- env %||% globalenv()
    for (nm in call_heads(f)) {
      fn <- get0(nm, envir = env, mode = "function")
      if (is_session_function(fn) && is.null(out[[nm]])) out[[nm]] <- fn
    }
  }
  out
}

# Packages whose functions a model's formulas call (found from the formula's
# environment: in a package's tests, the package's own functions). The
# packages a formula's environment merely leads to are not needed.
formula_packages <- function(model) {
  out <- character()
  for (f in model_formulas(model)) {
    env <- if (inherits(f, "formula")) environment(f) else NULL
    env <- env %||% globalenv()
    for (nm in call_heads(f)) {
      fn <- get0(nm, envir = env, mode = "function")
      if (is.function(fn) && !is.primitive(fn) && isNamespace(environment(fn))) {
        out <- c(out, getNamespaceName(environment(fn)))
      }
    }
  }
  setdiff(unique(out), base_packages)
}

model_formulas <- function(model) {
  if (!is.list(model)) return(list(attr(model, "terms")))
  found <- list(model$terms, model$formula, model$pred.formula, attr(model$model, "terms"),
                attr(model, "terms"))
  if (is.call(model$call)) {
    found <- c(found, Filter(function(a) is.call(a) && identical(a[[1]], as.name("~")),
                             as.list(model$call)[-1]))
  }
  if (inherits(model, "nls") && is.function(model$m$formula)) {
    found <- c(found, list(tryCatch(model$m$formula(), error = function(e) NULL)))
  }
  Filter(function(x) is.language(x) || inherits(x, "formula"), found)
}

# Names of the functions called in an expression.
call_heads <- function(e) {
  heads <- character()
  visit <- function(e) {
    if (!is.call(e)) return()
    if (is.name(e[[1]])) heads <<- c(heads, as.character(e[[1]])) else visit(e[[1]])
    for (i in seq_along(e)[-1]) if (!is_empty_arg(e, i)) visit(e[[i]])
  }
  visit(e)
  setdiff(unique(heads), c("~", "+", "-", "*", "/", ":", "^", "(", "%in%", "|"))
}

# Size hygiene ---------------------------------------------------------------

max_bytes <- function() getOption("dbrxr.max_bytes", 1024^3)

# Refuse a payload larger than getOption("dbrxr.max_bytes") before anything is
# uploaded. `parts` is a named list of what travels; `size` the serialized
# size when known, else R's estimate (object.size(), which needs no copy, so
# a 2 GB payload is refused without serializing it).
check_max_bytes <- function(parts, size = NULL, call = rlang::caller_env()) {
  limit <- max_bytes()
  sizes <- part_sizes(parts)
  total <- size %||% sum(sizes)
  if (total <= limit) return(invisible(total))
  # What object.size() does not see: environments that serialize() writes.
  hidden <- total - sum(sizes)
  if (hidden > 0.1 * total) sizes[["environments the model captured"]] <- hidden
  top <- utils::head(sizes[order(-sizes)], 3)
  abort_dbrxr(sprintf("The payload is %s, more than the %s allowed by `dbrxr.max_bytes`.",
                      format_bytes(total), format_bytes(limit)),
              "dbrxr_input_error",
              problems = sprintf("Largest part%s: %s.", if (length(top) > 1) "s" else "",
                                 paste0("`", names(top), "` (", vapply(top, format_bytes, ""), ")",
                                        collapse = ", ")),
              hints = c("Send less: drop what the cluster does not need, or read the data there (e.g. from a table).",
                        "Or raise the limit: `options(dbrxr.max_bytes = 4e9)`."),
              size = total, limit = limit, call = call)
}

# Estimated sizes of a payload's parts: elements of lists one level down
# (`model$qr`), so the message points at what to drop.
part_sizes <- function(parts) {
  out <- numeric()
  for (nm in names(parts)) {
    x <- parts[[nm]]
    if (is.list(x) && length(x) && !is.null(names(x)) && !is.data.frame(x)) {
      sub <- vapply(x, function(el) as.numeric(utils::object.size(el)), numeric(1))
      names(sub) <- paste0(nm, "$", names(x))
      out <- c(out, sub)
    } else {
      out[[nm]] <- as.numeric(utils::object.size(x))
    }
  }
  out
}

# Bytes of `x` that are environments it captured (a model fitted inside a
# function carries that function's frame, often with its data): serialize()
# with environments replaced by a name shows the size without them.
captured_env_bytes <- function(x, total) {
  bare <- serialize(x, NULL, xdr = FALSE, refhook = function(e) "env")
  total - length(bare)
}

# The globals of remote_eval(), remote_function() and futures travel with the
# code: over getOption("dbrxr.size_notice_bytes") (10 MB), the same warning
# class as a model's captured environments, naming the largest globals.
warn_large_globals <- function(globals, what, size = NULL, call = rlang::caller_env()) {
  sizes <- part_sizes(globals)
  size <- size %||% sum(sizes)
  if (!length(sizes) || size <= size_notice_bytes()) return(invisible(FALSE))
  largest <- utils::head(sort(sizes, decreasing = TRUE), 3)
  cli::cli_warn(c(
    cli_escape(sprintf("%s and the globals it uses are %s; they travel to the cluster with it.",
                       what, format_bytes(size))),
    "x" = cli_escape(paste0("Largest globals: ", paste0("`", names(largest), "` (",
                                                        vapply(largest, format_bytes, ""), ")",
                                                        collapse = ", "), ".")),
    "i" = "Use only what the code needs (a column or a summary rather than a whole data frame), or read the data on the cluster (e.g. dbx_read_table())."),
    class = c("dbrxr_size_warning", "dbrxr_warning"), size = size, largest = largest,
    call = call)
  invisible(TRUE)
}

warn_captured_environments <- function(model, rm, call = rlang::caller_env()) {
  # Small models, or ones warned about, are not serialized a second time.
  if (rm$size < 1024^2 || isTRUE(the$size_warned[[rm$hash]])) return(invisible(FALSE))
  env_bytes <- captured_env_bytes(model, rm$size)
  if (env_bytes < 1024^2 || env_bytes < rm$size / 2) return(invisible(FALSE))
  if (is.null(the$size_warned)) the$size_warned <- new.env(parent = emptyenv())
  assign(rm$hash, TRUE, envir = the$size_warned)
  cli::cli_warn(c(
    cli_escape(sprintf("%s of this model's %s are environments it captured.",
                       format_bytes(env_bytes), format_bytes(rm$size))),
    "i" = "A model fitted inside a function keeps that function's variables (often its data) in its formula's environment, and they travel with it.",
    "i" = cli_escape("Fit it outside the function, or before fitting give the formula a small environment: `environment(formula) <- new.env(parent = globalenv())` (put there only what the formula needs)."),
    "i" = "This warning is shown once per model."),
    class = c("dbrxr_size_warning", "dbrxr_warning"), env_bytes = env_bytes, size = rm$size,
    call = call)
  invisible(TRUE)
}
