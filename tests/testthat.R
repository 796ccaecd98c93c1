library(testthat)
library(dbrxr)

test_check("dbrxr")
