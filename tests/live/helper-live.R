# The live suite's shared state and clean-up. One run prefix names every object
# the suite creates: tables `<schema>.<prefix>_<name>`, registered models
# `<schema>.<prefix>_<name>`, jobs `<prefix>_<name>`, and every staged file
# (the connection's staging location is `<DBRXR_LIVE_STAGING>/<prefix>`). Each
# object is recorded before it is created and removed at the end, also when a
# test fails (setup-live.R defers live_cleanup()).

# Tests run in environments of their own (not dbrxr's namespace), so that the
# functions and formulas they ship need nothing but R on the cluster.
library(dbrxr)

live <- new.env(parent = emptyenv())

live_start <- function() {
  schema <- Sys.getenv("DBRXR_LIVE_SCHEMA")
  ident <- "^[A-Za-z_][A-Za-z0-9_]*$"
  parts <- strsplit(schema, ".", fixed = TRUE)[[1]]
  if (length(parts) != 2L || !all(grepl(ident, parts))) {
    stop("DBRXR_LIVE_SCHEMA must be catalog.schema, both plain identifiers (letters, digits, _); it is \"",
         schema, "\".", call. = FALSE)
  }
  stamp <- format(Sys.time(), "%Y%m%d%H%M%S", tz = "UTC")
  live$prefix <- paste0("dbrxr_live_", stamp, "_", substr(dbrxr:::unique_id(), 1, 6))
  base <- sub("/+$", "", Sys.getenv("DBRXR_LIVE_STAGING", "dbfs:/tmp/dbrxr"))
  live$staging <- paste0(base, "/", live$prefix)
  live$schema <- schema
  live$tables <- character()
  live$models <- character()
  live$jobs <- list()
  live$conn <- dbrxr::dbx_connect(cluster_id = Sys.getenv("DBRXR_LIVE_CLUSTER_ID"),
                                  staging = live$staging, timeout = 600)
  cat(sprintf("live suite: run prefix %s, staging %s\n", live$prefix, live$staging))
  invisible(live)
}

# A table name of this run, recorded for clean-up before it exists.
live_table <- function(name) {
  full <- sprintf("%s.%s_%s", live$schema, live$prefix, name)
  live$tables <- union(live$tables, full)
  full
}

live_model <- function(name) {
  full <- sprintf("%s.%s_%s", live$schema, live$prefix, name)
  live$models <- union(live$models, full)
  full
}

# Python for one clean-up statement with a name of ours in it: the name travels
# as hex digits, never as source text.
live_python_with <- function(template, value) {
  hex <- paste(as.character(charToRaw(enc2utf8(value))), collapse = "")
  sprintf(template, sprintf("bytes.fromhex('%s').decode()", hex))
}

live_drop_table <- function(name) {
  dbrxr::dbx_exec(live_python_with("spark.sql('DROP TABLE IF EXISTS ' + %s)", name), live$conn)
}

live_table_exists <- function(name) {
  !inherits(try(dbrxr::dbx_read_table(name, limit = 1, conn = live$conn), silent = TRUE), "try-error")
}

live_delete_model <- function(name) {
  dbrxr::dbx_exec(live_python_with(paste0(
    "(lambda m, n: m.MlflowClient(registry_uri=m.get_registry_uri()).delete_registered_model(n))",
    "(__import__('mlflow'), %s)"), name), live$conn)
}

# Remove everything this run recorded; each step on its own, so one failure
# does not keep the rest. Returns what could not be removed.
live_cleanup <- function() {
  if (is.null(live$conn) || isTRUE(live$conn$closed)) return(invisible(character()))
  left <- character()
  attempt <- function(what, expr) {
    ok <- tryCatch({ force(expr); TRUE }, error = function(e) {
      message("live clean-up: could not remove ", what, ": ", conditionMessage(e))
      FALSE
    })
    if (!ok) left <<- c(left, what)
  }
  for (j in live$jobs) attempt(paste("job", format(j$id %||% "")), dbrxr::dbx_job_delete(j))
  for (m in live$models) attempt(paste("model", m), live_delete_model(m))
  for (t in live$tables) attempt(paste("table", t), live_drop_table(t))
  conn <- live$conn
  if (!isTRUE(live$staging_removed)) {
    attempt(paste("staging", live$staging), {
      dbrxr:::run_job(dbrxr:::unwrap(dbrxr:::rust_remove_tree_start(conn$handle, live$staging)), FALSE)
      live$staging_removed <- TRUE
    })
  }
  live$jobs <- list()
  live$models <- character()
  live$tables <- character()
  invisible(left)
}

# Parts of the suite to leave out: DBRXR_LIVE_SKIP, comma-separated (e.g.
# "tables" where the cluster cannot drop what it would create).
live_skipped <- function(part) part %in% trimws(strsplit(Sys.getenv("DBRXR_LIVE_SKIP"), ",")[[1]])

`%||%` <- function(x, y) if (is.null(x)) y else x
