#' @keywords internal
"_PACKAGE"

# Package-level state: the default local cluster of this R session.
the <- new.env(parent = emptyenv())

#' @importFrom stats predict
NULL

# Names R CMD check cannot see: Spark SQL functions in dbplyr translations
# (sql_translation()), and the variables of closures given their own environment
# (a logged model, a glmnet model scored on data frames).
utils::globalVariables(c("%DIV%", "%RLIKE%", "endswith", "ln", "percentile", "startswith",
                         "obj", "session", "vars"))
