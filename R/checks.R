# Argument checks: each raises dbrxr_input_error before any network call.
# The type tests and their wording are rlang's standalone checks
# (R/import-standalone-types-check.R, vendored as httr2 does); the wrappers
# here give them dbrxr's class, dbrxr's defaults (NULL allowed, numbers
# finite) and what rlang's do not test: the UTF-8 bytes of strings.

input_error <- c("dbrxr_input_error", "dbrxr_error")

# A string's value is never shown in the error: it may be a secret passed in
# the wrong place. Numbers are shown ("not the number -1").
shows_value <- function(x) !is.character(x)

# A single string of UTF-8 text, or NULL when `null_ok`.
check_text <- function(x, arg = caller_arg(x), null_ok = TRUE, call = caller_env()) {
  check_string(x, allow_null = null_ok, show_value = shows_value(x), arg = arg,
               call = call, class = input_error)
  check_utf8(x, arg, call = call)
}

# `finite = TRUE` (the default) refuses Inf and -Inf as well as NA/NaN:
# limits and intervals are numbers of seconds, items or bytes.
check_number <- function(x, arg = caller_arg(x), null_ok = TRUE, min = -Inf,
                         finite = TRUE, call = caller_env()) {
  check_number_decimal(x, min = min, allow_infinite = !finite, allow_null = null_ok,
                       show_value = shows_value(x), arg = arg, call = call, class = input_error)
}

check_whole <- function(x, arg = caller_arg(x), min = 0, max = Inf, null_ok = FALSE,
                        call = caller_env()) {
  check_number_whole(x, min = min, max = max, allow_null = null_ok,
                     show_value = shows_value(x), arg = arg, call = call, class = input_error)
}

check_flag <- function(x, arg = caller_arg(x), null_ok = TRUE, call = caller_env()) {
  check_bool(x, allow_null = null_ok, show_value = shows_value(x), arg = arg, call = call,
             class = input_error)
}

check_fun <- function(x, arg = caller_arg(x), null_ok = TRUE, call = caller_env()) {
  check_function(x, allow_null = null_ok, arg = arg, call = call, class = input_error)
}

# A character vector without NA (names of columns, packages, ...): UTF-8 text.
check_chars <- function(x, arg = caller_arg(x), null_ok = TRUE, call = caller_env()) {
  check_character(x, allow_null = null_ok, arg = arg, call = call, class = input_error)
  if (anyNA(x)) {
    abort_dbrxr(sprintf("`%s` must not contain NA.", arg), "dbrxr_input_error",
                problems = sprintf("Element %d is NA.", which(is.na(x))[[1]]), call = call)
  }
  check_utf8(x, arg, call = call)
}

# How an argument of the wrong type is described in a problem line: rlang's
# friendly type, without the value (it may be a secret).
obj_type <- function(x) obj_type_friendly(x, value = FALSE)

# Strings sent to the cluster or the workspace (code, names, paths,
# settings) must be UTF-8 text: their bytes are what the Rust core sends, so
# the bytes are checked, whatever the encoding mark or the locale. The bytes
# are never shown (a secret may be among them): only where the first bad one is.
check_utf8 <- function(x, arg = caller_arg(x), call = caller_env()) {
  if (!is.character(x)) return(invisible(x))
  bad <- which(!is.na(x) & !validUTF8(x))
  if (length(bad)) {
    i <- bad[[1]]
    bytes <- charToRaw(x[[i]])
    at <- first_invalid_utf8(bytes)
    abort_dbrxr(sprintf("`%s` is not valid UTF-8 text.", arg), "dbrxr_input_error",
                problems = sprintf("%sbyte %d of %d is not part of a UTF-8 character.",
                                   if (length(x) > 1L) sprintf("In element %d, ", i) else "",
                                   at, length(bytes)),
                hints = c("Convert it first: `enc2utf8(x)` for text marked latin1, `iconv(x, from = \"latin1\", to = \"UTF-8\")` for text read in another encoding.",
                          "Binary data travels as a raw vector or inside R objects, not as text."),
                call = call)
  }
  invisible(x)
}

# 1-based position of the first byte that breaks UTF-8 in `bytes`.
first_invalid_utf8 <- function(bytes) {
  lo <- 1L
  hi <- length(bytes)
  # The longest valid prefix, by bisection on validUTF8() of prefixes.
  while (lo < hi) {
    mid <- (lo + hi) %/% 2L
    if (validUTF8(rawToChar(bytes[seq_len(mid)]))) lo <- mid + 1L else hi <- mid
  }
  lo
}

# Options passed in `...` must be named and known. A misspelt option (or a
# misspelt argument of the function, listed in `args`) gets "did you mean".
check_option_names <- function(opts, known, hints, call = caller_env(),
                               args = character()) {
  if (length(opts) && (is.null(names(opts)) || any(!nzchar(names(opts))))) {
    abort_dbrxr("Options in `...` must be named.", "dbrxr_input_error", hints = hints, call = call)
  }
  unknown <- setdiff(names(opts), known)
  if (length(unknown)) {
    guesses <- did_you_mean(unknown, c(args, known))
    abort_dbrxr(sprintf("Unknown option%s: %s.", if (length(unknown) > 1) "s" else "",
                        paste0("`", unknown, "`", collapse = ", ")),
                "dbrxr_input_error", hints = c(guesses, hints), call = call)
  }
  invisible(opts)
}

# "Did you mean `host`?" for names close to a known one (at most 2 edits).
did_you_mean <- function(names, candidates) {
  candidates <- setdiff(unique(candidates), "...")
  out <- character()
  for (nm in names) {
    if (!length(candidates)) break
    d <- utils::adist(nm, candidates, ignore.case = TRUE)[1, ]
    if (min(d) <= min(2, max(1, nchar(nm) %/% 2))) {
      out <- c(out, sprintf("`%s`: did you mean `%s`?", nm, candidates[which.min(d)]))
    }
  }
  out
}

# An argument given as "" (often `Sys.getenv()` of an unset variable) is named
# as empty, instead of counting as not given.
check_not_empty <- function(x, arg = caller_arg(x), call = caller_env()) {
  if (is.character(x) && length(x) == 1L && !is.na(x) && !nzchar(trimws(x))) {
    abort_dbrxr(sprintf("`%s` is empty.", arg), "dbrxr_input_error",
                hints = c(sprintf("Pass the %s itself, or leave `%s` out to use the environment variables or a profile.", arg, arg),
                          "An empty value often comes from `Sys.getenv()` of a variable that is not set."),
                call = call)
  }
  invisible(x)
}
