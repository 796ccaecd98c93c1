#!/usr/bin/env bash
# Is any verb slower than in an earlier build? Installs git ref $1 (default:
# the last commit before the third wave, 0d27588) into build/base-<ref>/lib,
# then runs bench/bench-verbs.R $2 times (default 3) for the baseline and for
# this tree's installed build, alternating, each in a fresh R process, and
# prints per verb the median seconds per call of both and their ratio.
# Needs `make build venv` first (`make bench-against` does that).
set -euo pipefail
cd "$(dirname "$0")/.."
ref="${1:-0d27588}"
rounds="${2:-3}"
root="$PWD"
base="$root/build/base-$ref"
export DBRXR_PYTHON="${DBRXR_PYTHON:-$root/.venv/bin/python}"

if [ ! -f "$base/.installed" ]; then
  rm -rf "$base" && mkdir -p "$base/lib"
  git worktree add -f --detach "$base/src" "$ref" >/dev/null
  # Start from this tree's cargo target: only what changed is rebuilt.
  if [ -d src/rust/target ] && [ ! -d "$base/src/src/rust/target" ]; then
    cp -a src/rust/target "$base/src/src/rust/"
  fi
  (cd "$base/src" && R CMD INSTALL --no-test-load --library="$base/lib" . >"$base/install.log" 2>&1) ||
    { tail -20 "$base/install.log"; exit 1; }
  touch "$base/.installed"
fi

results="$(mktemp -d)"
trap 'rm -rf "$results"' EXIT
for i in $(seq "$rounds"); do
  for which in base this; do
    lib="$root/build/lib"; [ "$which" = base ] && lib="$base/lib"
    R_LIBS="$lib" Rscript bench/bench-verbs.R 2>/dev/null | sed "s/^/$which\t/" >>"$results/all"
  done
done

Rscript - "$results/all" "$ref" <<'EOF'
args <- commandArgs(TRUE)
d <- utils::read.delim(args[1], header = FALSE, quote = "", col.names = c("build", "case", "s"))
d$case <- trimws(d$case)
cases <- unique(d$case)
med <- function(b, k) stats::median(d$s[d$build == b & d$case == k])
fmt <- function(x) if (x < 1) sprintf("%.2f ms", 1000 * x) else sprintf("%.2f s", x)
cat(sprintf("| verb | %s | this tree | this / %s |\n|---|---|---|---|\n", args[2], args[2]))
for (k in cases) {
  b <- med("base", k); t <- med("this", k)
  cat(sprintf("| %s | %s | %s | %.2fx |\n", k, fmt(b), fmt(t), t / b))
}
EOF
