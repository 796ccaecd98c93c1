# `make bench`: runs every bench/bench-*.R part on a local cluster and prints
# its tables in Markdown (the README quotes them). Each part defines
# `bench_<name>()` returning a named list of data frames.
suppressPackageStartupMessages(library(dbrxr))
parts <- sort(list.files("bench", pattern = "^bench-.+\\.R$", full.names = TRUE))
md_table <- function(df) {
  c(paste0("| ", paste(names(df), collapse = " | "), " |"),
    paste0("|", paste(rep("---", ncol(df)), collapse = "|"), "|"),
    apply(df, 1, function(r) paste0("| ", paste(r, collapse = " | "), " |")))
}
cat(sprintf("dbrxr %s benchmark on %s, R %s, %d cores\n\n", utils::packageVersion("dbrxr"),
            Sys.info()[["sysname"]], getRversion(), parallel::detectCores()))
for (part in parts) {
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
