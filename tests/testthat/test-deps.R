# Dependency discovery, transportability and version comparison (no cluster).

test_that("the package of the predict() method is found through the class chain", {
  pkgs <- function(m) as.vector(dbrxr:::predict_method_packages(m))
  expect_equal(pkgs(lm(mpg ~ wt, mtcars)), "stats")
  gam <- mgcv::gam(mpg ~ s(wt), data = mtcars)
  expect_equal(pkgs(gam), c("mgcv", "stats"))  # gam, glm and lm methods
  rf <- ranger::ranger(Species ~ ., iris, num.trees = 3)
  expect_equal(pkgs(rf), "ranger")
  none <- dbrxr:::predict_method_packages(structure(list(), class = "no_such_cls"))
  expect_equal(as.vector(none), character())
  expect_false(attr(none, "found"))
})

test_that("a model without any predict() method is an input error", {
  expect_error(dbrxr:::as_remote_model(structure(list(), class = "no_such_cls")),
               class = "dbrxr_input_error")
})

test_that("external pointers are found wherever serialize() would go", {
  e <- new.env()
  e$handle <- new("externalptr")
  f <- local(function() 1, e)
  info <- dbrxr:::inspect_object(list(a = 1, fit = list(predictor = f)), "model")
  expect_equal(info$externalptrs, "environment(model$fit$predictor)$handle")
  attr_obj <- structure(1:3, ptr = new("externalptr"))
  expect_equal(dbrxr:::inspect_object(attr_obj, "x")$externalptrs, "attr(x, \"ptr\")")
  # Parent environments are serialized too.
  inner <- new.env(parent = e)
  g <- local(function() 2, inner)
  expect_match(dbrxr:::inspect_object(g, "g")$externalptrs, "parent.env")
  err <- expect_error(dbrxr:::check_transportable(list(fit = f), "model"),
                      class = "dbrxr_input_error")
  expect_match(conditionMessage(err), "external pointer")
})

test_that("ordinary models hold no external pointer and name their namespaces", {
  g <- glm(am ~ wt, data = mtcars, family = binomial)
  info <- dbrxr:::inspect_object(g, "g")
  expect_equal(info$externalptrs, character())
  expect_true("stats" %in% info$namespaces)
})

test_that("globals, helper functions and pkg:: references are found", {
  env <- new.env(parent = globalenv())
  local(envir = env, {
    helper <- function(x) utils::head(x, 1)
    h <- function(x) stats::median(x) + helper(x)
    n <- 3
  })
  gl <- dbrxr:::find_globals(quote(h(seq_len(n)) + tools::file_ext("a.b")), env)
  expect_setequal(names(gl$globals), c("h", "helper", "n"))
  expect_true(all(c("utils", "stats", "tools") %in% gl$packages))
  expect_null(attr(gl$globals, "where"))
})

test_that("namespace_refs skips missing arguments", {
  expect_equal(dbrxr:::namespace_refs(quote(x[, 1] + ranger::ranger(a))), "ranger")
  f <- function(a, b = glmnet::glmnet) a
  expect_equal(dbrxr:::namespace_refs(f), "glmnet")
})

test_that("versions: missing and different are told apart, base packages ignored", {
  cmp <- dbrxr:::compare_versions(c(a = "1.0", b = "2.0", stats = "4.2.2"),
                                  c(a = "1.0", b = "2.1", c = NA, stats = "4.3.0"))
  expect_equal(cmp$missing, "c")
  expect_equal(cmp$different$package, "b")
  expect_equal(cmp$different$local, "2.0")
  expect_equal(cmp$different$remote, "2.1")
})

test_that("report_versions raises for missing and warns for different versions", {
  err <- expect_error(dbrxr:::report_versions(c(stats = "4.2.2", nopkgdbrxr = NA)),
                      class = "dbrxr_missing_package_error")
  expect_equal(err$package, "nopkgdbrxr")
  expect_match(conditionMessage(err), "remote_install_packages")
  w <- expect_warning(dbrxr:::report_versions(c(rlang = "0.0.1")),
                      class = "dbrxr_version_warning")
  expect_equal(w$remote_version, "0.0.1")
  expect_equal(w$local_version, as.character(packageVersion("rlang")))
})

test_that("chunked predictions join to exactly one predict() call", {
  set.seed(1)
  n <- 300
  d <- data.frame(x1 = rnorm(n), x2 = runif(n),
                  g = factor(sample(c("a", "b", "c"), n, TRUE)),
                  day = as.Date("2025-01-01") + seq_len(n))
  d$y <- d$x1 + as.integer(d$g) + rnorm(n)
  d$cls <- factor(ifelse(d$y > 2, "hi", "lo"))
  nd <- d[sample(n, 100), ]
  nd$x1[c(5, 9)] <- NA
  cc <- stats::complete.cases(nd)
  split_predict <- function(fit, newdata, ...) {
    rows <- dbrxr:::row_count(newdata)
    b <- floor(seq(0, rows, length.out = 4))
    parts <- lapply(1:3, function(j) {
      predict(fit, dbrxr:::take_rows(newdata, b[j] + 1, b[j + 1]), ...)
    })
    expect_true(dbrxr:::chunk_combinable(parts[[1]], b[2]))
    dbrxr:::combine_chunks(parts)
  }
  check <- function(fit, newdata, ...) {
    expect_identical(split_predict(fit, newdata, ...), predict(fit, newdata, ...))
  }
  check(lm(y ~ x1 + x2 + g + day, d), nd)
  check(glm(cls ~ x1 + g, d, family = binomial), nd, type = "response")
  rp <- rpart::rpart(cls ~ x1 + x2 + g, d)
  check(rp, nd, type = "class")
  check(rp, nd, type = "prob")
  check(mgcv::gam(y ~ s(x2) + g, data = d), nd)
  check(ranger::ranger(cls ~ x1 + x2 + g, d, num.trees = 20, seed = 1), nd[cc, ])
  sv <- e1071::svm(cls ~ x1 + x2, d, probability = TRUE)
  check(sv, nd[cc, ], probability = TRUE)
  x <- as.matrix(d[, c("x1", "x2")])
  gn <- glmnet::glmnet(x, d$y)
  check(gn, x[1:90, ], s = 0.01)
  check(randomForest::randomForest(cls ~ x1 + x2 + g, d, ntree = 21), nd)
})

test_that("fast row chunks equal `[.data.frame`", {
  d <- data.frame(a = 1:10, f = factor(letters[1:10]), day = as.Date("2025-01-01") + 0:9)
  d$m <- matrix(1:20, 10)
  d$x <- c(1.5, NA, NaN, Inf, -0, 6:10)
  d$s <- c("a", NA, "\u00e9t\u00e9", "", letters[5:10])
  d$b <- c(TRUE, NA, FALSE, rep(TRUE, 7))
  d$z <- complex(real = 1:10, imaginary = -1)
  d$r <- as.raw(1:10)
  expect_identical(dbrxr:::take_rows(d, 3, 6), d[3:6, , drop = FALSE])
  expect_identical(dbrxr:::take_rows(d, 1, 10), d[1:10, , drop = FALSE])
  expect_identical(dbrxr:::take_rows(d, 10, 10), d[10, , drop = FALSE])
  rownames(d) <- paste0("r", 1:10)
  expect_identical(dbrxr:::take_rows(d, 3, 6), d[3:6, , drop = FALSE])
  expect_identical(dbrxr:::take_rows(mtcars, 2, 5), mtcars[2:5, , drop = FALSE])
  expect_identical(dbrxr:::take_rows(1:10 + 0.5, 2, 4), c(2.5, 3.5, 4.5))
  # Rows outside the vector are an error, never a read past its end.
  expect_error(dbrxr:::unwrap(dbrxr:::rust_slice_rows(1:3, 2, 4)), "outside")
  expect_null(dbrxr:::unwrap(dbrxr:::rust_slice_rows(factor("a"), 1, 1)))
})

test_that("fast row chunks keep integer row names of a sampled data.frame", {
  d <- mtcars
  rownames(d) <- NULL
  s <- d[c(5, 2, 9, 1), ]
  expect_identical(dbrxr:::take_rows(s, 2, 3), s[2:3, , drop = FALSE])
})

test_that("a model object is walked and hashed once; a changed copy is new", {
  fit <- lm(mpg ~ wt, data = mtcars)
  environment(fit$terms) <- globalenv()
  attr(fit$model, "terms") <- fit$terms
  a <- dbrxr:::as_remote_model(fit)
  b <- dbrxr:::as_remote_model(fit)
  expect_null(b$store$bytes)   # remembered: not serialized again
  expect_equal(b$hash, a$hash)
  expect_identical(dbrxr:::model_bytes(b), dbrxr:::model_bytes(a))
  fit$coefficients[1] <- 0     # copy-on-modify: a new object
  c <- dbrxr:::as_remote_model(fit)
  expect_false(identical(c$hash, a$hash))
  expect_false(is.null(c$store$bytes))
  # Objects with environments of their own are never remembered.
  f <- local({ k <- 1; function(x) x + k })
  m <- structure(list(f = f), class = "lm")
  dbrxr:::as_remote_model(m)
  expect_false(is.null(dbrxr:::as_remote_model(m)$store$bytes))
})
