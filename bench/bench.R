# `make bench`: runs every bench/bench-*.R part on a local cluster and prints
# its tables in Markdown (the README quotes them). Each part defines
# `bench_<name>()` returning a named list of data frames.
#
# Each part runs in its own fresh R process (`Rscript bench/bench.R <part>`
# runs one): what a part leaves behind (the table part's 1e7-row frames, a
# grown malloc heap) changes later parts' local baselines. A local predict()
# whose memory is already mapped takes a third of the time of one that must
# fault it in (1e6 x 10 lm: ~40 ms against ~120 ms on this machine).
suppressPackageStartupMessages(library(dbrxr))
md_table <- function(df) {
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", paste(rep("---", ncol(df)), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(r, collapse = " | "), " |")))
}
run_part <- function(part) {
  env <- new.env()
  sys.source(part, envir = env)
  name <- sub("^bench-(.+)\\.R$", "\\1", basename(part))
  fn <- get(paste0("bench_", gsub("-", "_", name)), envir = env)
  tables <- fn()
  for (t in names(tables)) {
    cat(sprintf("### %s: %s\n\n", name, gsub("_", " ", t)))
    cat(md_table(tables[[t]]), sep = "\n")
    cat("\n")
  }
}

args <- commandArgs(trailingOnly = TRUE)
if (length(args)) {
  run_part(args[[1]])
} else {
  cat(sprintf("dbrxr %s benchmark on %s, R %s, %d cores\n\n", utils::packageVersion("dbrxr"),
              Sys.info()[["sysname"]], getRversion(), parallel::detectCores()))
  parts <- sort(list.files("bench", pattern = "^bench-.+\\.R$", full.names = TRUE))
  for (part in parts) {
    status <- system2(file.path(R.home("bin"), "Rscript"), c("bench/bench.R", part))
    if (status != 0) stop(sprintf("bench part %s failed (exit status %d)", part, status), call. = FALSE)
  }
}
