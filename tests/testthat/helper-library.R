# A CRAN-like repository for remote_library() tests and benchmarks, made from
# the small source packages in fixtures/library: dbxA (imports dbxB), dbxB
# (2.0.0 in src/contrib, 1.0.0 in src/contrib/Archive as CRAN keeps old
# versions), dbxC, and dbxBroken (fails to install). dbxLocal (imports dbxB) is
# in no repository: its tarball is returned as `local`. Built once per R
# process with R CMD build and indexed with tools::write_PACKAGES.
library_test_repo <- local({
  made <- NULL
  function(fixtures = NULL) {
    if (!is.null(made) && dir.exists(made$dir)) return(made)
    fixtures <- fixtures %||% testthat::test_path("fixtures", "library")
    dir <- tempfile("dbrxr-repo-")
    contrib <- file.path(dir, "src", "contrib")
    dir.create(file.path(contrib, "Archive", "dbxB"), recursive = TRUE)
    work <- tempfile("dbrxr-pkgsrc-")
    dir.create(work)
    build <- function(pkg, version = NULL, into = contrib) {
      src <- file.path(work, paste0(pkg, "-", version %||% "src"), pkg)
      dir.create(dirname(src))
      file.copy(file.path(fixtures, pkg), dirname(src), recursive = TRUE)
      if (!is.null(version)) {
        desc <- read.dcf(file.path(src, "DESCRIPTION"))
        desc[, "Version"] <- version
        write.dcf(desc, file.path(src, "DESCRIPTION"))
      }
      old <- setwd(into)
      on.exit(setwd(old))
      out <- system2(file.path(R.home("bin"), "R"),
                     c("CMD", "build", "--no-manual", "--no-build-vignettes", shQuote(src)),
                     stdout = TRUE, stderr = TRUE)
      tarball <- file.path(into, sprintf("%s_%s.tar.gz", pkg,
                                         read.dcf(file.path(src, "DESCRIPTION"))[, "Version"]))
      if (!file.exists(tarball)) stop("R CMD build failed for ", pkg, ":\n", paste(out, collapse = "\n"))
      tarball
    }
    build("dbxB", "1.0.0", into = file.path(contrib, "Archive", "dbxB"))
    build("dbxB", "2.0.0")
    build("dbxA")
    build("dbxC")
    build("dbxBroken")
    local_dir <- file.path(dir, "local")
    dir.create(local_dir)
    local_tarball <- build("dbxLocal", into = local_dir)
    tools::write_PACKAGES(contrib, type = "source")
    made <<- list(dir = dir, url = paste0("file://", dir), local = local_tarball)
    made
  }
})

# Install packages of the test repository here (into `lib`), so this session
# has them too.
install_from_test_repo <- function(pkgs, lib, repo = library_test_repo()) {
  dir.create(lib, recursive = TRUE, showWarnings = FALSE)
  utils::install.packages(pkgs, lib = lib, repos = repo$url, type = "source", quiet = TRUE)
  stopifnot(all(file.exists(file.path(lib, pkgs, "DESCRIPTION"))))
  invisible(lib)
}

# This session gets `pkgs` from the test repository for the calling test:
# installed into a temporary library put first on .libPaths(), and unloaded
# (dependents first) when the test ends, so no namespace outlives its library.
local_test_packages <- function(pkgs, .env = parent.frame()) {
  lib <- withr::local_tempdir(.local_envir = .env)
  install_from_test_repo(pkgs, lib)
  withr::local_libpaths(lib, action = "prefix", .local_envir = .env)
  withr::defer({
    for (ns in c("dbxLocal", "dbxA", "dbxB", "dbxC")) {
      if (isNamespaceLoaded(ns)) unloadNamespace(ns)
    }
  }, envir = .env, priority = "last")
  invisible(lib)
}

# An renv lockfile (JSON) pinning `pins` (named versions) from `repo`.
write_test_lockfile <- function(path, pins, repo = library_test_repo()) {
  pkgs <- lapply(names(pins), function(p) {
    list(Package = p, Version = pins[[p]], Source = "Repository", Repository = "TEST")
  })
  names(pkgs) <- names(pins)
  lock <- list(R = list(Version = paste(R.version$major, R.version$minor, sep = "."),
                        Repositories = list(list(Name = "TEST", URL = repo$url))),
               Packages = pkgs)
  jsonlite::write_json(lock, path, auto_unbox = TRUE, pretty = TRUE)
  invisible(path)
}

# The library directory of `lib` as this machine sees it (the local cluster
# keeps DBFS under its state directory).
local_library_dir <- function(conn, lib) {
  file.path(conn$local_info$state_dir, "fs", sub("^/+", "", lib$path))
}

# dbrxr's own tests define their functions and models in testthat's test
# environment, whose parent is dbrxr's namespace, so what they ship needs dbrxr
# on the cluster, as a user's tests need their package under test there. The
# local cluster's contexts never see this session's libraries: link the
# installed dbrxr into the cluster's own site library.
provide_dbrxr_on_cluster <- function(conn) {
  site <- file.path(conn$local_info$state_dir, "r-site-library")
  link <- file.path(site, "dbrxr")
  if (dir.exists(site) && !file.exists(link)) file.symlink(find.package("dbrxr"), link)
  invisible(conn)
}
