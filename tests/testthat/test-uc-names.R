# Unity Catalog names in a context's Spark, as on a workspace (issue 35): the
# local cluster's catalogs (dbrxr.LocalCatalog, one per catalog) take
# catalog.schema.table wherever Spark takes a name, in SQL and in the
# DataFrame API, and no SQL text is rewritten.

py_value <- function(code, conn) dbx_exec(code, conn)

test_that("SQL takes three-level names natively: struct fields, string literals, DataFrame API", {
  conn <- shared_spark_cluster("main.ucn")
  py_value(paste(
    "spark.sql('CREATE OR REPLACE TABLE main.ucn.t AS SELECT 1 AS id, named_struct(\"b\", named_struct(\"c\", 7)) AS a')",
    sep = "\n"
  ), conn)
  # a.b.c is a struct field of column a, not a table name.
  expect_identical(py_value("spark.sql('SELECT a.b.c FROM main.ucn.t').collect()[0][0]", conn), "7")
  # A three-level name in a string literal stays a string.
  expect_match(py_value("spark.sql(\"SELECT 'main.ucn.t' AS x\").collect()[0][0]", conn), "'main.ucn.t'", fixed = TRUE)
  # The DataFrame API: saveAsTable, read.table, listTables.
  py_value("spark.range(4).write.saveAsTable('main.ucn.t2')", conn)
  expect_identical(py_value("spark.read.table('main.ucn.t2').count()", conn), "4")
  tables <- py_value("sorted(t.name for t in spark.catalog.listTables('main.ucn'))", conn)
  expect_match(tables, "['t', 't2']", fixed = TRUE)
  # USE CATALOG / USE SCHEMA, then one-part names; SHOW CATALOGS and SCHEMAS.
  got <- dbx_exec("USE CATALOG main; USE SCHEMA ucn; SELECT count(*) AS n FROM t2", conn, language = "sql")
  expect_identical(got$n, 4)
  dbx_exec("USE CATALOG hive_metastore; USE SCHEMA default", conn, language = "sql")
  catalogs <- dbx_exec("SHOW CATALOGS", conn, language = "sql")[[1]]
  expect_true(all(c("main", "hive_metastore") %in% catalogs))
  expect_true("ucn" %in% dbx_exec("SHOW SCHEMAS IN main", conn, language = "sql")[[1]])
  # Spark's internal directory name never shows.
  expect_false(any(grepl("__", dbx_exec("SHOW SCHEMAS", conn, language = "sql")[[1]])))
})

test_that("a two-part name resolves in the current catalog from any thread (R requests run on one of their own)", {
  conn <- shared_spark_cluster("main.ucn3")
  dbx_exec("spark.sql('CREATE SCHEMA IF NOT EXISTS ucn_two')", conn)
  code <- paste("import threading", "out = []",
                "def f():",
                "    try:",
                "        spark.range(3).write.mode('overwrite').saveAsTable('ucn_two.t'); out.append('ok')",
                "    except Exception as e:",
                "        out.append(str(e)[:200])",
                "t = threading.Thread(target=f); t.start(); t.join(); print(out[0])", sep = "\n")
  expect_identical(dbx_exec(code, conn), "ok")
  # The table verbs' requests (another thread of the context's process).
  dbx_write_table(data.frame(x = 1:3), "ucn_two.r", mode = "overwrite", conn = conn)
  expect_identical(dbx_read_table("hive_metastore.ucn_two.r", conn = conn), data.frame(x = 1:3))
})

test_that("CREATE CATALOG, CREATE OR REPLACE TABLE AS SELECT, DELETE FROM, and refusals that say why", {
  conn <- shared_spark_cluster("main.ucn2")
  dbx_exec("CREATE CATALOG IF NOT EXISTS ucn_c2; CREATE SCHEMA IF NOT EXISTS ucn_c2.s", conn, language = "sql")
  dbx_exec("CREATE OR REPLACE TABLE ucn_c2.s.t AS SELECT 5 AS v", conn, language = "sql")
  expect_identical(dbx_exec("SELECT v FROM ucn_c2.s.t", conn, language = "sql")$v, 5L)
  # A catalog made in one context is known in another: a second connection
  # has a context (and a Spark session) of its own.
  other <- dbx_connect(host = conn$local_info$url, token = shared_spark_token,
                       cluster_id = conn$local_info$cluster_id)
  withr::defer(dbx_disconnect(other))
  expect_identical(dbx_exec("spark.table('ucn_c2.s.t').count()", other), "1")

  dbx_exec("CREATE OR REPLACE TABLE main.ucn2.r AS SELECT id FROM range(10)", conn, language = "sql")
  dbx_exec("CREATE OR REPLACE TABLE main.ucn2.r AS SELECT id FROM range(20)", conn, language = "sql")
  expect_identical(dbx_exec("SELECT count(*) AS n FROM main.ucn2.r", conn, language = "sql")$n, 20)
  dbx_exec("DELETE FROM main.ucn2.r WHERE id >= 5 AND id < 8", conn, language = "sql")
  left <- dbx_exec("SELECT id FROM main.ucn2.r ORDER BY id", conn, language = "sql")$id
  expect_identical(left, as.numeric(setdiff(0:19, 5:7)))

  merge <- tryCatch(
    dbx_exec("MERGE INTO main.ucn2.r USING main.ucn2.r AS o ON r.id = o.id WHEN MATCHED THEN DELETE",
             conn, language = "sql"),
    error = identity)
  expect_s3_class(merge, "dbrxr_error")
  expect_match(conditionMessage(merge), "MERGE INTO .*needs Delta Lake")
  update <- tryCatch(dbx_exec("UPDATE main.ucn2.r SET id = 0", conn, language = "sql"), error = identity)
  expect_match(conditionMessage(update), "UPDATE .*needs Delta Lake")

  missing <- tryCatch(dbx_exec("SELECT * FROM main.ucn2.missing", conn, language = "sql"), error = identity)
  expect_match(conditionMessage(missing), "`main`.`ucn2`.`missing`", fixed = TRUE)
  expect_no_match(conditionMessage(missing), "__")
})

test_that("a Spark session the user's code makes itself has the catalogs", {
  conn <- shared_spark_cluster("main.ucn3")
  out <- dbx_exec(paste(
    "from pyspark.sql import SparkSession",
    "s = SparkSession.builder.getOrCreate()",
    "s.sql('CREATE OR REPLACE TABLE main.ucn3.x AS SELECT 3 AS k')",
    "s.table('main.ucn3.x').collect()[0].k",
    sep = "\n"), conn)
  expect_identical(out, "3")
})

test_that("Spark reads dbfs:/ paths: the files the DBFS API holds", {
  conn <- shared_spark_cluster()
  staged <- stage_bytes(conn, charToRaw("x,y\n1,2\n3,4\n"), "session")
  expect_match(staged$path, "^dbfs:/")
  got <- dbx_exec(sprintf(
    "sum(int(r.y) for r in spark.read.option('header', True).csv('%s').collect())", staged$path), conn)
  expect_identical(got, "6")
  # And what Spark writes there, the DBFS API reads.
  out <- sprintf("dbfs:/tmp/ucn-spark-%s", paste(sample(letters, 8), collapse = ""))
  dbx_exec(sprintf("spark.createDataFrame([('hello',)], 'v string').coalesce(1).write.text('%s')", out), conn)
  part <- dbx_exec(sprintf(
    "print(spark.read.format('binaryFile').load('%s/part-*').select('path').collect()[0].path)", out), conn)
  expect_match(part, paste0("^", out, "/part-"))
  expect_identical(rawToChar(stage_fetch(conn, part)), "hello\n")
})
