
test_that("requests are serialized in Rust exactly as serialize(xdr = FALSE) does", {
  rs <- function(x) dbrxr:::unwrap(dbrxr:::rust_serialize(x))
  objs <- list(NULL, 1:3, c(a = 1.5, b = NA), "\u00e9", list(op = "score", seed = 1:626),
               mtcars, factor(c("x", NA)), quote(f(x)), function(x) x + 1, new.env(),
               as.Date("2025-01-01"), structure(list(), class = "thing"), raw(0))
  for (x in objs) expect_identical(rs(x), serialize(x, NULL, xdr = FALSE))
})
