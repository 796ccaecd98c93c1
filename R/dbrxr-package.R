#' @keywords internal
"_PACKAGE"

# Package-level state: the default local cluster of this R session.
the <- new.env(parent = emptyenv())
