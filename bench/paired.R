# Small calls of two builds, paired: one live R session per build (each with
# its own local cluster) runs a burst of warm calls of one verb, then the
# other does, and so on. A burst takes ~0.2 s, so the machine's speed (which
# drifts by up to 2x over minutes on a VM) is the same for both sides of a
# pair; tools/bench-against.sh alternates whole processes, a minute apart.
#
#   Rscript bench/paired.R BASE_LIB THIS_LIB [ROUNDS] [VERBS]
#   e.g. Rscript bench/paired.R build/base-0d27588/lib build/lib 30 pass,eval,score
#
# Prints per verb and part (total; to the context; in it; back) the median
# of both builds and the median of the paired differences and ratios.
args <- commandArgs(TRUE)
if (length(args) < 2) stop("usage: Rscript bench/paired.R BASE_LIB THIS_LIB [ROUNDS] [VERBS]")
libs <- c(base = normalizePath(args[1]), this = normalizePath(args[2]))
rounds <- if (length(args) >= 3) as.integer(args[3]) else 20L
verbs <- strsplit(if (length(args) >= 4) args[4] else "pass,eval,score", ",")[[1]]
setup <- normalizePath(file.path(dirname(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE))),
                                 "paired-session.R"))
python <- Sys.getenv("DBRXR_PYTHON", normalizePath(".venv/bin/python", mustWork = FALSE))
sessions <- lapply(libs, function(lib) {
  callr::r_session$new(callr::r_session_options(libpath = c(lib, .libPaths()),
                                                env = c(DBRXR_PYTHON = python)))
})
for (s in sessions) s$run(function(path) { source(path, local = globalenv()); TRUE }, list(setup))
rows <- list()
for (r in seq_len(rounds)) for (verb in verbs) for (b in names(sessions)) {
  v <- sessions[[b]]$run(function(verb) burst(verb), list(verb))
  rows[[length(rows) + 1]] <- list(round = r, verb = verb, build = b, v = v)
}
for (verb in verbs) {
  mine <- Filter(function(x) x$verb == verb, rows)
  parts <- names(mine[[1]]$v)
  cat(verb, "\n")
  for (p in parts) {
    get <- function(b) vapply(Filter(function(x) x$build == b, mine), function(x) x$v[[p]], 0)
    base <- get("base"); this <- get("this")
    cat(sprintf("  %-14s base %6.3f ms  this %6.3f ms  paired diff %+.3f ms  ratio %.2f\n",
                p, stats::median(base), stats::median(this), stats::median(this - base),
                stats::median(this / base)))
  }
}
for (s in sessions) s$close()
