# Model Serving tests (test-serve.R, test-slow-serve.R).

# Whether a process has ended (gone, or a zombie awaiting its parent), within 10 s.
process_gone <- function(pid) {
  for (i in 1:100) {
    stat <- suppressWarnings(tryCatch(readLines(file.path("/proc", pid, "stat")), error = function(e) ""))
    if (!nzchar(stat[1]) || grepl("^[0-9]+ \\(.*\\) Z", stat[1])) return(TRUE)
    Sys.sleep(0.1)
  }
  FALSE
}
