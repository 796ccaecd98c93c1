# /dbfs and /Volumes in the local cluster's processes (issue 35): code written
# for Databricks opens them as paths, and they are the files of the DBFS and
# Files APIs. And the languages of execution contexts: python, sql and r.

test_that("a spark_python_task writes /dbfs/tmp/x.txt and the DBFS API reads it", {
  conn <- shared_cluster()
  name <- basename(tempfile("paths-task-"))
  script <- paste0("import sys\n",
                   "with open('/dbfs/tmp/", name, ".txt', 'w') as f:\n",
                   "    f.write('written by ' + sys.argv[1])\n")
  file <- dbx_upload(charToRaw(script), paste0("dbfs:/tmp/", name, ".py"), conn = conn)
  task <- list(task_key = "write", existing_cluster_id = conn$local_info$cluster_id,
               spark_python_task = list(python_file = file, parameters = I("the task")))
  res <- dbrxr:::jobs_call(conn, "submit", list(body = list(run_name = name, tasks = list(task))))
  run <- dbrxr:::run_wait(dbx_run(res$run_id, conn = conn))
  expect_identical(run$result, "SUCCESS")
  expect_identical(rawToChar(dbx_download(paste0("dbfs:/tmp/", name, ".txt"), conn = conn)),
                   "written by the task")
})

test_that("R code in a context reads a file uploaded to /Volumes through the Files API, by that path", {
  conn <- shared_cluster()
  csv <- "a,b\n1,x\n2,y\n"
  path <- paste0("/Volumes/main/s/v/", basename(tempfile("paths-")), ".csv")
  dbx_upload(charToRaw(csv), path, conn = conn)
  got <- remote_eval(read.csv(path), conn)
  expect_identical(got, read.csv(text = csv))
  # And the context's own R (an R command) sees the same file.
  out <- dbx_exec(sprintf("nrow(read.csv('%s'))", path), conn, language = "r")
  expect_identical(out, "[1] 2")
})

test_that("a context's Python writes /dbfs/..., and dbfs:/ names the same file", {
  conn <- shared_cluster()
  name <- basename(tempfile("paths-py-"))
  dbx_exec(sprintf("import os\nos.makedirs('/dbfs/tmp/%s', exist_ok=True)\n_ = open('/dbfs/tmp/%s/out.txt', 'w').write('from python')",
                   name, name), conn)
  expect_identical(rawToChar(dbx_download(sprintf("dbfs:/tmp/%s/out.txt", name), conn = conn)),
                   "from python")
  # The shipped code's mapping is the identity but for the dbfs:/ form, as on
  # Databricks: its path for dbfs:/x opens the file the API wrote.
  dbx_upload(charToRaw("from the API"), sprintf("dbfs:/tmp/%s/in.txt", name), conn = conn)
  remote_eval(1, conn)  # the bootstrap is loaded
  out <- dbx_exec(sprintf("import dbrxr_bootstrap as b\nprint(b.map_path('dbfs:/tmp/%s/in.txt'))\nprint(open(b.map_path('dbfs:/tmp/%s/in.txt')).read())",
                          name, name), conn)
  expect_identical(out, sprintf("/dbfs/tmp/%s/in.txt\nfrom the API", name))
})

test_that("R commands run in the context's own R, as in a Databricks R context", {
  conn <- shared_cluster()
  expect_identical(dbx_exec("sum(1:10)", conn, language = "r"), "[1] 55")
  # R's REPL: visible values printed, output and warnings as text, errors with R's summary.
  out <- dbx_exec("x <- 2\ninvisible(3)\ncat('hello\\n')\nx * 21", conn, language = "r")
  expect_identical(out, "hello\n[1] 42")
  expect_identical(dbx_exec("x", conn, language = "r"), "[1] 2")  # the context's R keeps its state
  err <- expect_error(dbx_exec("f <- function() stop('inner trouble')\nf()", conn, language = "r"),
                      class = "dbrxr_error")
  expect_identical(err$summary, "Error in f() : inner trouble")
})

test_that("SQL commands run as SQL cells on the context's Spark session", {
  conn <- shared_spark_cluster()
  out <- dbx_exec("SELECT 1 AS one, 'a' AS s", conn, language = "sql")
  expect_identical(out, data.frame(one = 1L, s = "a"))
})

test_that("where the machine refuses mount namespaces, the cluster says why once, and dbrxr still works", {
  skip_if_no_rpy2()
  # DBRXR_LOCAL_MOUNTS=off stands in for a machine that refuses them.
  withr::local_envvar(DBRXR_LOCAL_MOUNTS = "off")
  said <- 0
  conn <- withCallingHandlers(local_test_cluster(), dbrxr_local_no_paths_message = function(m) {
    said <<- said + 1
    invokeRestart("muffleMessage")
  })
  expect_identical(said, 1)
  expect_match(conn$local_info$paths_missing, "/dbfs and /Volumes are not available", fixed = TRUE)
  expect_match(conn$local_info$paths_missing, "DBRXR_LOCAL_MOUNTS=off", fixed = TRUE)
  # Requests and answers staged as files (over 1 MB) still reach the context
  # and the job task: the platform module finds them in the store.
  x <- runif(2e5)
  expect_identical(remote_eval(x * 2, conn), x * 2)
  expect_identical(dbx_run_result(remote_job(function(v) v * 2, 21, conn = conn)), 42)
  # dbx_sitrep() shows why.
  row <- dbrxr:::check_paths(conn, NULL, Sys.time() + 60, new.env())
  expect_identical(row$status, "warn")
  expect_match(row$detail, "DBRXR_LOCAL_MOUNTS=off", fixed = TRUE)
  expect_identical(said, 1)
})
