# remote_library() from a local source package (no repository needed): built
# once under this run's staging location, used by the next call.
test_that("remote_library() builds a package on the cluster and uses it", {
  name <- paste0("dbrxrlive", substr(dbrxr:::unique_id(), 1, 6))
  src <- file.path(withr::local_tempdir(), name)
  dir.create(file.path(src, "R"), recursive = TRUE)
  writeLines(c(paste("Package:", name), "Version: 0.0.1", "Title: Live Suite Probe",
               "Description: Built by the dbrxr live suite.", "License: MIT",
               "Authors@R: person('dbrxr', 'live', role = c('aut', 'cre'), email = 'a@b.c')"),
             file.path(src, "DESCRIPTION"))
  writeLines("export(triple)", file.path(src, "NAMESPACE"))
  writeLines("triple <- function(x) 3 * x", file.path(src, "R", "triple.R"))
  old <- setwd(dirname(src))
  on.exit(setwd(old), add = TRUE)
  system2(file.path(R.home("bin"), "R"), c("CMD", "build", "--no-manual", shQuote(name)),
          stdout = FALSE, stderr = FALSE)
  tarball <- normalizePath(sprintf("%s_0.0.1.tar.gz", name))
  lib <- dbrxr::remote_library(name, local = tarball, conn = live$conn)
  expect_true(startsWith(lib$path, sub("^dbfs:", "/dbfs", live$staging)) ||
                startsWith(lib$path, live$staging))
  expect_identical(dbrxr::remote_eval(getExportedValue(name, "triple")(1:4), live$conn), c(3, 6, 9, 12))
})
