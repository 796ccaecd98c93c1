# RStudio's connections pane, through a recording observer: open, the object
# tree of the local catalog, a preview, update and close.

recording_observer <- function() {
  log <- new.env()
  log$events <- list()
  rec <- function(what) function(...) log$events[[length(log$events) + 1L]] <- c(list(event = what), list(...))
  list(log = log, observer = list(connectionOpened = rec("opened"), connectionClosed = rec("closed"),
                                  connectionUpdated = rec("updated")))
}

test_that("a DBI connection shows the catalog tree and a preview, and closes", {
  conn <- sql_conn()
  rec <- recording_observer()
  withr::local_options(connectionObserver = rec$observer)
  con <- DBI::dbConnect(databricks_sql(), conn = conn)
  opened <- rec$log$events[[1]]
  expect_identical(opened$event, "opened")
  expect_identical(opened$type, "Databricks SQL")
  expect_identical(opened$connectionObject, con)
  expect_named(opened$listObjectTypes(), "catalog")

  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.pane")
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "pane", table = "iris"),
                    iris[1:20, ], overwrite = TRUE)
  expect_identical(rec$log$events[[length(rec$log$events)]]$event, "updated")
  cats <- opened$listObjects()
  expect_true(all(c("main", "hive_metastore") %in% cats$name))
  expect_true(all(cats$type == "catalog"))
  schemas <- opened$listObjects(catalog = "main")
  expect_true("pane" %in% schemas$name)
  tables <- opened$listObjects(catalog = "main", schema = "pane")
  expect_identical(tables[tables$name == "iris", "type"], "table")
  cols <- opened$listColumns(catalog = "main", schema = "pane", table = "iris")
  expect_identical(cols$name, names(iris))
  expect_identical(cols$type, c(rep("double", 4), "string"))
  prev <- opened$previewObject(rowLimit = 5, catalog = "main", schema = "pane", table = "iris")
  expect_identical(prev, transform(iris[1:5, ], Species = as.character(Species)))

  DBI::dbDisconnect(con)
  closed <- rec$log$events[[length(rec$log$events)]]
  expect_identical(closed[c("event", "type", "host")], list(event = "closed", type = "Databricks SQL",
                                                            host = opened$host))
})

test_that("local_cluster() and dbx_connect() connections open and close in the pane", {
  skip_if_no_local_cluster()
  rec <- recording_observer()
  withr::local_options(connectionObserver = rec$observer)
  conn <- dbx_connect(host = "https://example.invalid", token = "dapi-x", cluster_id = "c-pane")
  expect_identical(rec$log$events[[1]]$event, "opened")
  expect_identical(rec$log$events[[1]]$type, "Databricks")
  expect_identical(rec$log$events[[1]]$host, "https://example.invalid/c-pane")
  dbx_disconnect(conn)
  expect_identical(rec$log$events[[2]][c("event", "host")],
                   list(event = "closed", host = "https://example.invalid/c-pane"))
  local <- local_cluster()
  expect_identical(rec$log$events[[3]]$event, "opened")
  expect_match(rec$log$events[[3]]$displayName, "local cluster")
  dbx_disconnect(local)
  expect_identical(rec$log$events[[4]]$event, "closed")
})
