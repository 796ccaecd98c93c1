# MLflow and the Unity Catalog registry (issue 20), once dbrxr has it.
test_that("remote_log_model() registers a model that scores identically, also from Python", {
  skip_if_not(exists("remote_log_model", envir = asNamespace("dbrxr")), "remote_log_model() is not in this dbrxr yet")
  fit <- lm(mpg ~ wt + hp, data = mtcars)
  name <- live_model("lm")
  v <- dbrxr::remote_log_model(fit, name, prototype = mtcars[0, c("wt", "hp")],
                               input_example = head(mtcars[, c("wt", "hp")]), conn = live$conn)
  version <- v$version %||% v[["version"]]
  uri <- sprintf("models:/%s/%s", name, version)
  expect_identical(dbrxr::remote_score(uri, mtcars, conn = live$conn), predict(fit, mtcars))
  # A Python load in the context: the values printed with repr() round-trip exactly.
  out <- dbrxr::dbx_exec(live_python_with(paste0(
    "print('\\n'.join(repr(float(x)) for x in (lambda m, pd, np: np.asarray(m.pyfunc.load_model(%s).predict(",
    "pd.DataFrame({'wt': [2.62, 3.44], 'hp': [110.0, 175.0]}))).ravel())",
    "(__import__('mlflow.pyfunc'), __import__('pandas'), __import__('numpy'))))"), uri), live$conn)
  # Only the printed numbers: MLflow may print notes of its own first.
  lines <- trimws(strsplit(out, "\n", fixed = TRUE)[[1]])
  got <- as.numeric(grep("^-?[0-9][0-9.eE+-]*$", lines, value = TRUE))
  expect_identical(got, unname(predict(fit, data.frame(wt = c(2.62, 3.44), hp = c(110, 175)))))
})
