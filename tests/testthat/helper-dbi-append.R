# Concurrent appends to one table (issue 36): two R processes (callr), each
# with a context of its own on the shared Spark cluster, append `n` batches
# each, alternating DBI::dbWriteTable(append = TRUE) and dbx_write_table(mode
# = "append"). Every call succeeds, or fails having written nothing; the
# table then holds exactly the batches of the calls that succeeded.
expect_concurrent_appends <- function(n, table) {
  skip_if_not_installed("callr")
  conn <- sql_conn()
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  withr::defer(DBI::dbDisconnect(con))
  rows <- 4L
  DBI::dbExecute(con, paste("CREATE SCHEMA IF NOT EXISTS", sub("\\.[^.]*$", "", table)))
  batch <- function(tag) data.frame(batch = tag, i = seq_len(rows), x = seq_len(rows) / 3)
  dbx_write_table(batch("init"), table, mode = "overwrite", conn = conn)
  client <- function(who, n, url, token, cluster_id, table, rows) {
    library(dbrxr)
    conn <- dbx_connect(host = url, token = token, cluster_id = cluster_id)
    con <- DBI::dbConnect(databricks_sql(), conn = conn)
    parts <- strsplit(table, ".", fixed = TRUE)[[1]]
    id <- DBI::Id(catalog = parts[1], schema = parts[2], table = parts[3])
    out <- list(ok = character(), failed = character())
    for (k in seq_len(n)) {
      tag <- sprintf("%s-%d", who, k)
      df <- data.frame(batch = tag, i = seq_len(rows), x = seq_len(rows) / 3)
      got <- tryCatch({
        if (k %% 2 == 1) DBI::dbWriteTable(con, id, df, append = TRUE)
        else dbx_write_table(df, table, mode = "append", conn = conn)
        TRUE
      }, error = function(e) paste(class(e)[1], conditionMessage(e)))
      if (isTRUE(got)) out$ok <- c(out$ok, tag) else out$failed <- c(out$failed, paste(tag, got))
    }
    dbx_disconnect(conn)
    out
  }
  env <- c(callr::rcmd_safe_env(), R_LIBS = paste(.libPaths(), collapse = .Platform$path.sep),
           DBRXR_PYTHON = Sys.getenv("DBRXR_PYTHON"))
  args <- function(who) list(who, n, conn$local_info$url, shared_spark_token, conn$local_info$cluster_id,
                             table, rows)
  a <- callr::r_bg(client, args = args("a"), env = env)
  b <- callr::r_bg(client, args = args("b"), env = env)
  on.exit({ a$kill(); b$kill() }, add = TRUE)
  t0 <- Sys.time()
  a$wait(600 * 1000)
  b$wait(600 * 1000)
  message(sprintf("concurrent appends: 2 x %d in %.1f s", n, as.numeric(difftime(Sys.time(), t0, units = "secs"))))
  res <- list(a$get_result(), b$get_result())
  ok <- c(res[[1]]$ok, res[[2]]$ok)
  failed <- c(res[[1]]$failed, res[[2]]$failed)
  # This context lists the table's files afresh: the other contexts wrote them.
  DBI::dbExecute(con, paste("REFRESH TABLE", table))
  got <- DBI::dbGetQuery(con, sprintf("SELECT batch, COUNT(*) AS n FROM %s GROUP BY batch", table))
  got$n <- as.integer(as.character(got$n))
  # Every call succeeded, and each success is exactly one batch, once.
  expect_identical(failed, character())
  expect_setequal(got$batch, c("init", ok))
  expect_identical(nrow(got), length(ok) + 1L)
  expect_true(all(got$n == rows))
  expect_identical(length(ok), 2L * as.integer(n))
  invisible(list(ok = ok, failed = failed))
}
