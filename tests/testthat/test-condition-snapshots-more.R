# Snapshots of the condition classes added with the request path and the
# table verbs (see test-condition-snapshots.R for the others), each triggered
# for real.
file_env <- environment()


test_that("credentials in the host URL are stripped with a warning that never shows them", {
  local_clean_config()
  # Whether this becomes the session's default connection depends on the
  # tests run before: keep that (and its one-time message) out of the snapshot.
  withr::local_options(dbrxr.connection = NULL)
  expect_snapshot(transform = scrub, {
    conn <- suppressMessages(
      dbx_connect(host = "https://alice:Zq9SNAPSECRETq1@dbc-1.cloud.databricks.com",
                  token = "dapi-x", cluster_id = "c"),
      classes = "dbrxr_default_connection_message")
  })
  withr::defer(dbx_disconnect(conn))
  expect_false(any(grepl("SNAPSECRET", capture.output(print(conn)), fixed = TRUE)))
})

test_that("a remote request cancelled before its answer was read", {
  conn <- remote_test_conn(file_env)
  h <- dbrxr:::remote_request_start(conn, list(op = "none"))
  dbrxr:::remote_request_cancel(h)
  expect_snapshot(error = TRUE, dbrxr:::remote_request_finish(h))
})

test_that("table verbs: no PySpark in the cluster's Python; a missing table; an existing output", {
  skip_if_no_rpy2()
  plain <- "/usr/bin/python3"
  has_spark <- identical(suppressWarnings(system2(plain, c("-c", shQuote("import pyspark")),
                                                  stdout = FALSE, stderr = FALSE)), 0L)
  if (!has_spark && !is.null(local_python())) {
    nospark <- local_cluster(python = plain)
    withr::defer(dbx_disconnect(nospark))
    expect_snapshot(error = TRUE, transform = scrub,
                    dbx_read_table("main.default.t", conn = nospark))
  }
  skip_if_no_spark()
  conn <- shared_spark_cluster("main.snap")
  dbx_write_table(data.frame(x = 1:3), "main.snap.t", mode = "overwrite", conn = conn)
  expect_snapshot(error = TRUE, transform = scrub, {
    dbx_read_table("main.snap.nope", conn = conn)
    dbx_write_table(data.frame(x = 1), "main.snap.t", conn = conn)
  })
})
