#!/usr/bin/env bash
# Installs what dbrxr needs on a Debian/Ubuntu machine, only what is missing:
# R and the R packages it and its tests use (Debian r-cran-* packages), Python
# with rpy2 for the local cluster, pandoc for the vignette, and a JDK 17 for
# the local cluster's Spark (PySpark itself goes into the project's venv).
# Idempotent: when everything is there it only runs dpkg queries.
set -euo pipefail

APT_PACKAGES=(
  r-base-dev python3-rpy2 python3-venv pandoc
  r-cran-cli r-cran-rlang r-cran-globals
  r-cran-testthat r-cran-withr r-cran-processx r-cran-callr
  r-cran-knitr r-cran-rmarkdown r-cran-roxygen2
  r-cran-ranger r-cran-randomforest r-cran-glmnet r-cran-rpart r-cran-e1071 r-cran-mgcv
  r-cran-jsonlite r-cran-future r-cran-future.apply r-cran-furrr r-cran-promises
  r-cran-dbi r-cran-dbplyr r-cran-dplyr r-cran-dbitest r-cran-blob r-cran-bit64
)

# PySpark 3.5 needs Java 17 (or newer), and the local cluster compiles its
# Unity Catalog plugin for Spark (src/rust/src/local/spark_catalog) with javac:
# add Debian's headless JDK when no such javac runs.
javac_major() {
  javac -version 2>&1 | sed -n 's/^javac \([0-9]*\).*/\1/p' | head -n 1
}
javac_v="$(command -v javac >/dev/null 2>&1 && javac_major || true)"
if [ "${javac_v:-0}" -lt 17 ]; then
  APT_PACKAGES+=(openjdk-17-jdk-headless)
fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/cargo" ] || {
  echo "install-deps: cargo is required (https://rustup.rs)" >&2
  exit 1
}
