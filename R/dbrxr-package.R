#' @keywords internal
"_PACKAGE"

# Package-level state: the default local cluster of this R session.
the <- new.env(parent = emptyenv())

#' @importFrom stats predict
NULL

# What the vendored rlang standalone checks (R/import-standalone-*.R) and the
# argument checks built on them (R/checks.R) call unprefixed.
#' @importFrom rlang %||% abort caller_arg caller_env chr env_get_list is_bool is_call
#' @importFrom rlang is_character is_closure is_environment is_formula is_function
#' @importFrom rlang is_integerish is_list is_missing is_na is_null is_string is_symbol
#' @importFrom rlang is_vector na_chr na_dbl na_int
NULL

# Names R CMD check cannot see: Spark SQL functions in dbplyr translations
# (sql_translation()), and the variables of closures given their own environment
# (a logged model, a glmnet model scored on data frames).
utils::globalVariables(c("%DIV%", "%RLIKE%", "endswith", "ln", "percentile", "startswith",
                         "obj", "session", "vars"))
