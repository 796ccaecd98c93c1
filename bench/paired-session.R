# Sourced into each live session of bench/paired.R: a local cluster, and
# burst(what) that times `n` warm calls of one verb, split where it can be
# (R before Rust, on the way to the context, in the context, on the way back).
# The split stamps the context process's own command loop (worker.py's
# `_queue` and `_reply`), which both builds share.
out <- file(Sys.getenv("DBRXR_PAIRED_LOG", nullfile()), open = "a")
sink(out); sink(out, type = "message")  # a full stdout pipe would stall the session
suppressMessages(library(dbrxr))
ns <- asNamespace("dbrxr")
conn <- local_cluster()
invisible(remote_eval(1, conn = conn))
dbrxr:::exec_command(conn, '
import sys, time
m = sys.modules["__main__"]
STAMPS = []
class _Stamped(object):
    def __init__(self, q): self.q = q
    def get(self, *a, **k):
        v = self.q.get(*a, **k)
        STAMPS.append(("in", time.time()))
        return v
    def put(self, *a, **k): return self.q.put(*a, **k)
if not isinstance(m._queue, _Stamped):
    m._queue = _Stamped(m._queue)
    _reply = m._reply
    def _stamped_reply(result):
        _reply(result)
        STAMPS.append(("out", time.time()))
    m._reply = _stamped_reply
m._STAMPS = STAMPS
')
stamps <- new.env()
now <- function() as.numeric(Sys.time())
stamp_around <- function(name, before = NULL, after = NULL) {
  f <- get(name, ns)
  g <- function(...) {
    if (!is.null(before)) stamps[[before]] <- c(stamps[[before]], now())
    on.exit(if (!is.null(after)) stamps[[after]] <- c(stamps[[after]], now()))
    f(...)
  }
  unlockBinding(name, ns)
  assign(name, g, ns)
}
stamp_around("rust_request_start", before = "rust")
stamp_around("run_job", after = "answered")
fit <- stats::lm(mpg ~ ., datasets::mtcars)
burst <- function(what, n = 60) {
  g <- switch(what,
    pass = function() dbrxr:::exec_command(conn, "pass"),
    eval = function() remote_eval(1 + 1, conn = conn),
    score = function() remote_score(fit, datasets::mtcars[1, ], conn = conn, progress = FALSE))
  for (i in 1:5) g()
  dbrxr:::exec_command(conn, "import sys; del sys.modules['__main__']._STAMPS[:]")
  for (k in c("start", "rust", "answered", "end")) stamps[[k]] <- numeric()
  for (i in seq_len(n)) {
    stamps$start <- c(stamps$start, now())
    g()
    stamps$end <- c(stamps$end, now())
  }
  w <- dbx_exec("import sys; print(' '.join('%s:%.6f' % x for x in sys.modules['__main__']._STAMPS))", conn)
  w <- strsplit(strsplit(w, " ")[[1]], ":")
  kind <- vapply(w, `[`, "", 1)
  at <- as.numeric(vapply(w, `[`, "", 2))
  t_in <- at[kind == "in"][seq_len(n)]
  t_out <- at[kind == "out"][1 + seq_len(n)]  # the first is the command that cleared them
  ms <- function(x) 1000 * stats::median(x)
  if (what == "pass") {
    return(c(total = ms(stamps$end - stamps$start), to_context = ms(t_in - stamps$start),
             in_context = ms(t_out - t_in), back = ms(stamps$end - t_out)))
  }
  c(total = ms(stamps$end - stamps$start), to_context = ms(t_in - stamps$start),
    in_context = ms(t_out - t_in), back = ms(stamps$answered - t_out),
    r_before_rust = ms(stamps$rust - stamps$start))
}
