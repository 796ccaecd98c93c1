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
# Returns the paths of external pointers, the namespaces referenced and how
# many (mutable) environments travel with `x`.
inspect_object <- function(x, label = "x") {
  seen <- list()
  ptrs <- character()
  namespaces <- character()
  visits <- 0L
  walk <- function(x, path) {
    visits <<- visits + 1L
    if (typeof(x) == "externalptr") {
      ptrs <<- c(ptrs, path)
      return()
    }
    if (is.environment(x)) {
      walk_env(x, path)
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
        walk(environment(x), sprintf("environment(%s)", path))
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
  walk_env <- function(env, path) {
    if (isNamespace(env)) {
      namespaces <<- c(namespaces, getNamespaceName(env))
      return()
    }
    if (identical(env, globalenv()) || identical(env, baseenv()) ||
        identical(env, emptyenv()) || startsWith(environmentName(env), "package:")) {
      return()
    }
    for (s in seen) if (identical(s, env)) return()
    seen[[length(seen) + 1L]] <<- env
    for (nm in ls(env, all.names = TRUE, sorted = FALSE)) {
      # `...` of a function frame cannot be got (and may be missing).
      if (identical(nm, "...") || bindingIsActive(nm, env)) next
      walk(get(nm, envir = env, inherits = FALSE), sprintf("%s$%s", path, nm))
    }
    walk_env(parent.env(env), sprintf("parent.env(%s)", path))
  }
  walk(x, label)
  list(externalptrs = unique(ptrs), namespaces = unique(namespaces),
       environments = length(seen))
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
                          "Use the package's own save/serialize function (e.g. `xgboost::xgb.save.raw()`), or fit the model on the cluster with `remote_eval()`."),
                path = info$externalptrs, call = call)
  }
  invisible(info)
}

# Packages providing the predict() method for `model`'s classes.
predict_method_packages <- function(model) {
  pkgs <- character()
  for (cls in class(model)) {
    m <- utils::getS3method("predict", cls, optional = TRUE)
    if (is.null(m)) next
    env <- environment(m)
    if (is.null(env)) next
    name <- if (isNamespace(env)) getNamespaceName(env) else environmentName(env)
    if (nzchar(name) && !identical(name, "R_GlobalEnv")) pkgs <- c(pkgs, name)
    break
  }
  unname(pkgs)
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

# The packages a value needs remotely, beyond those named explicitly.
needed_packages <- function(..., extra = character()) {
  pkgs <- unique(c(extra, unlist(list(...))))
  pkgs <- pkgs[!is.na(pkgs) & nzchar(pkgs)]
  setdiff(pkgs, "base")
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
report_versions <- function(remote, call = rlang::caller_env()) {
  if (!length(remote)) return(invisible())
  cmp <- compare_versions(local_versions(names(remote)), remote)
  if (length(cmp$missing)) {
    pkgs <- cmp$missing
    abort_dbrxr(sprintf("Package%s not installed on the cluster: %s.",
                        if (length(pkgs) > 1) "s" else "", paste(pkgs, collapse = ", ")),
                "dbrxr_missing_package_error",
                hints = sprintf("Install %s with `remote_install_packages(c(%s))`, or as a cluster library.",
                                if (length(pkgs) > 1) "them" else "it",
                                paste0("\"", pkgs, "\"", collapse = ", ")),
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
