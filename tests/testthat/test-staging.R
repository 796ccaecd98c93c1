# Staging: DBFS and Volumes, content hashes, byte-identical round trips.
# Clusters of their own: tests count each route's bytes from zero and inject
# dropped connections.

route_bytes <- function(conn, route) local_stats(conn)$routes[[route]]$bytes_in %||% 0

for (api in c("dbfs", "volume")) {
  test_that(sprintf("1 byte, 1 MiB and 100 MiB round-trip byte-identical through %s", api), {
    staging <- if (api == "dbfs") "dbfs:/tmp/dbrxr-test" else "/Volumes/main/default/vol/dbrxr"
    owner <- local_test_cluster(token = "staging-test-token-0123456789")
    conn <- dbx_connect(host = owner$local_info$url, token = "staging-test-token-0123456789",
                        cluster_id = owner$local_info$cluster_id, staging = staging)
    on.exit(dbx_disconnect(conn))
    upload_route <- if (api == "dbfs") "POST /api/2.0/dbfs/add-block" else "PUT /api/2.0/fs/files"
    set.seed(1)
    for (n in c(1, 2^20, 100 * 2^20)) {
      x <- as.raw(sample.int(256, n, replace = TRUE) - 1L)
      s1 <- stage_bytes(conn, x, "cache")
      expect_true(s1$uploaded)
      expect_identical(s1$size, n)
      expect_identical(s1$hash, unwrap(rust_sha256(x)))
      expect_true(startsWith(s1$path, staging))
      y <- stage_fetch(conn, s1$path)
      expect_identical(y, x)
      # The second upload of the same bytes sends nothing.
      before <- route_bytes(owner, upload_route)
      s2 <- stage_bytes(conn, x, "cache")
      expect_false(s2$uploaded)
      expect_identical(s2$path, s1$path)
      expect_identical(route_bytes(owner, upload_route), before)
    }
  })
}

test_that("cluster paths are what Python on the cluster sees", {
  conn <- local_test_cluster()
  s <- stage_bytes(conn, charToRaw("abc"), "session")
  expect_match(s$path, "^dbfs:/tmp/dbrxr/sessions/[0-9a-f]+/[0-9a-f]{64}$")
  expect_identical(s$cluster_path, sub("^dbfs:", "/dbfs", s$path))
  code <- sprintf("import os\nprint(open(os.environ['DBRXR_LOCAL_FS_ROOT'] + '%s', 'rb').read().decode())",
                  s$cluster_path)
  # The local cluster maps /dbfs/x to $DBRXR_LOCAL_FS_ROOT/dbfs/x.
  expect_identical(dbx_exec(code, conn), "abc")
})

test_that("dbx_upload and dbx_download move raw vectors and files", {
  conn <- local_test_cluster()
  p <- dbx_upload(charToRaw("hello"), conn = conn)
  expect_match(p, "^dbfs:/tmp/dbrxr/cache/[0-9a-f]{64}$")
  expect_identical(rawToChar(dbx_download(p, conn = conn)), "hello")

  src <- withr::local_tempfile(fileext = ".rds")
  saveRDS(mtcars, src)
  for (target in c("dbfs:/tmp/user/m.rds", "/Volumes/main/default/vol/m.rds")) {
    expect_identical(dbx_upload(src, target, conn = conn), target)
    dest <- withr::local_tempfile(fileext = ".rds")
    expect_identical(dbx_download(target, dest, conn = conn), dest)
    expect_identical(readRDS(dest), mtcars)
    expect_length(list.files(dirname(dest), pattern = "dbrxr-.*\\.part$", all.files = TRUE), 0)
  }
  expect_error(dbx_upload(charToRaw("x"), "/Volumes/main/default/vol/m.rds", conn = conn,
                          overwrite = FALSE), class = "dbrxr_http_error")
  stage_remove(conn, "dbfs:/tmp/user/m.rds")
  expect_error(dbx_download("dbfs:/tmp/user/m.rds", conn = conn), class = "dbrxr_http_404")
  stage_remove(conn, "dbfs:/tmp/user/m.rds")
})

test_that("bad staging arguments are input errors", {
  conn <- local_test_cluster()
  expect_error(dbx_upload(1:3, conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_upload("/no/such/file", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_upload(raw(1), "relative/path", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_download("dbfs:/tmp/../etc/passwd", conn = conn), class = "dbrxr_input_error")
  expect_error(dbx_download("dbfs:/x", dest = "/no/such/dir/f", conn = conn),
               class = "dbrxr_input_error")
})

test_that("a session's files on a Volume are removed when it closes; the cache stays", {
  owner <- local_test_cluster(token = "volume-test-token-0123456789")
  conn <- dbx_connect(host = owner$local_info$url, token = "volume-test-token-0123456789",
                      cluster_id = owner$local_info$cluster_id,
                      staging = "/Volumes/main/default/vol/dbrxr")
  tmp <- stage_bytes(conn, as.raw(1:5), "session")
  kept <- stage_bytes(conn, as.raw(6:9), "cache")
  expect_match(tmp$path, "^/Volumes/main/default/vol/dbrxr/sessions/")
  expect_identical(tmp$cluster_path, tmp$path)
  dbx_disconnect(conn)
  expect_error(stage_fetch(owner, tmp$path), class = "dbrxr_http_404")
  expect_identical(stage_fetch(owner, kept$path), as.raw(6:9))
})

test_that("uploads and downloads survive 30% dropped connections, to DBFS and to a Volume", {
  conn <- local_test_cluster()
  set.seed(4)
  x <- as.raw(sample(0:255, 12e6, replace = TRUE))
  local_faults(conn, drop_rate = 0.3, seed = 21)
  for (path in c("dbfs:/tmp/dbrxr-drops/x.bin", "/Volumes/main/default/files/drops/x.bin")) {
    expect_identical(dbx_upload(x, path, conn = conn), path)
    expect_identical(dbx_download(path, conn = conn), x)
  }
  p <- dbx_upload(x, conn = conn)
  expect_identical(dbx_download(p, conn = conn), x)
  expect_gt(local_stats(conn)$faults_injected, 10)
})
