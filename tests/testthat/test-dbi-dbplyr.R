# dbplyr on the DBI backend without spurious conditions: compute() (its
# temporary view used to fail on ANALYZE TABLE) and collect() after it, after
# a failed collect() and after print(), warn about nothing.

test_that("compute(), print() and collect() after a failed query give no warning", {
  skip_if_not_installed("dbplyr")
  skip_if_not_installed("dplyr")
  con <- sql_con()
  DBI::dbExecute(con, "CREATE SCHEMA IF NOT EXISTS main.dbidp")
  cars <- mtcars[1:6, c("mpg", "cyl")]
  rownames(cars) <- NULL
  DBI::dbWriteTable(con, DBI::Id(catalog = "main", schema = "dbidp", table = "cars"), cars, overwrite = TRUE)
  t <- dplyr::tbl(con, I("main.dbidp.cars"))
  expect_no_warning(utils::capture.output(print(t)))
  expect_error(dplyr::collect(dplyr::mutate(t, z = no_such_function(mpg))))
  got <- expect_no_warning(dplyr::collect(dplyr::filter(t, mpg > 20)))
  expect_identical(sort(got$mpg), sort(cars$mpg[cars$mpg > 20]))
  tmp <- expect_no_warning(dplyr::compute(dplyr::filter(t, cyl == 6)))
  expect_identical(nrow(expect_no_warning(dplyr::collect(tmp))), sum(cars$cyl == 6))
})
