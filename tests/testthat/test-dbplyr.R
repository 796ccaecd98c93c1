# dbplyr over databricks_sql(): a pipeline on the local cluster's Spark returns
# what the same dplyr pipeline returns on the data frames.

test_that("filter, mutate, group_by/summarise, a join and collect() match dplyr", {
  skip_if_not_installed("dbplyr")
  skip_if_not_installed("dplyr")
  con <- sql_con()
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dpl")
  cars <- data.frame(model = rownames(mtcars), mtcars[, c("mpg", "cyl", "hp", "wt")],
                     stringsAsFactors = FALSE)
  rownames(cars) <- NULL
  cyl <- data.frame(cyl = c(4, 6, 8), label = c("four", "six", "eight"), stringsAsFactors = FALSE)
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "dpl", table = "cars"), cars, overwrite = TRUE)
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "dpl", table = "cyl"), cyl, overwrite = TRUE)

  pipeline <- function(cars, cyl) {
    cars |>
      dplyr::filter(hp > 90, !is.na(mpg)) |>
      dplyr::mutate(ratio = hp / wt, heavy = wt > 3) |>
      dplyr::inner_join(cyl, by = "cyl") |>
      dplyr::group_by(label, heavy) |>
      dplyr::summarise(n = dplyr::n(), mpg = mean(mpg, na.rm = TRUE),
                       max_ratio = max(ratio, na.rm = TRUE), .groups = "drop") |>
      dplyr::arrange(label, heavy)
  }
  remote <- pipeline(dplyr::tbl(con, I("main.dpl.cars")),
                     dplyr::tbl(con, DBI::Id(catalog = "main", schema = "dpl", table = "cyl")))
  sql <- as.character(dbplyr::sql_render(remote))
  expect_match(sql, "`main`.`dpl`.`cyl`", fixed = TRUE)
  got <- dplyr::collect(remote)
  want <- pipeline(cars, cyl)
  got$n <- as.integer(got$n)
  expect_equal(as.data.frame(got), as.data.frame(want))
  # LIMIT, and Spark functions by their R names.
  expect_match(as.character(dbplyr::sql_render(head(dplyr::tbl(con, I("main.dpl.cars")), 3))), "LIMIT 3")
  low <- dplyr::tbl(con, I("main.dpl.cars")) |>
    dplyr::filter(grepl("^Merc", model)) |>
    dplyr::mutate(m = tolower(model), l = nchar(model), c = as.character(cyl)) |>
    dplyr::select(model, m, l, c) |>
    dplyr::arrange(model) |>
    dplyr::collect()
  merc <- sort(cars$model[grepl("^Merc", cars$model)])
  expect_identical(low$model, merc)
  expect_identical(low$m, tolower(merc))
  expect_identical(as.integer(low$l), nchar(merc))
})

test_that("remote_score_table() takes a lazy table as its input", {
  skip_if_not_installed("dbplyr")
  con <- sql_con()
  conn <- con@conn
  provide_dbrxr_on_cluster(conn)
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dpl")
  cars <- mtcars[, c("mpg", "wt", "hp")]
  rownames(cars) <- NULL
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "dpl", table = "score_in"), cars, overwrite = TRUE)
  fit <- lm(mpg ~ wt + hp, data = cars)
  heavy <- dplyr::tbl(con, I("main.dpl.score_in")) |> dplyr::filter(wt > 3)
  remote_score_table(fit, heavy, "main.dpl.score_out", keep = c("wt", "hp"), mode = "overwrite",
                     conn = conn)
  out <- DBI::dbGetQuery(con, "SELECT * FROM main.dpl.score_out ORDER BY wt, hp")
  want <- cars[cars$wt > 3, ]
  want <- want[order(want$wt, want$hp), ]
  expect_equal(out$.pred, unname(predict(fit, want)))
})
