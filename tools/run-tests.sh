#!/usr/bin/env bash
# Runs one tier of the test suites and ends with the ten slowest test files,
# what failed, and one plain line: `N passed, N failed[, N skipped]`.
#
#   bash tools/run-tests.sh default  # make test: testthat (R, against real local
#                                    # clusters) but its test-slow-*.R files; beside
#                                    # it, cargo test (Rust) and the conformance
#                                    # suite (the official databricks-sdk for
#                                    # Python against dbrxr-local); the live suite's
#                                    # skip line
#   bash tools/run-tests.sh slow     # make test-slow: testthat's test-slow-*.R only
# Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
tier="${1:-default}"
export R_LIBS="$PWD/build/lib${R_LIBS:+:$R_LIBS}"
export PATH="$PATH:$HOME/.cargo/bin"
counts="$(mktemp -d)"
trap 'rm -rf "$counts"' EXIT

# cargo test, then the conformance suite, in the background: testthat mostly
# waits on the local clusters' processes, so the compile and the Rust tests
# run beside it (the suite holds under a busy machine) and their logs are
# printed after it.
rust_and_conformance() {
  cargo test --release --manifest-path src/rust/Cargo.toml > "$counts/cargo.log" 2>&1
  local rc=$?
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
       END { print p+0, f+0, s+0 }' "$counts/cargo.log" > "$counts/cargo"
  if [ "$rc" != 0 ] && [ "$(cut -d' ' -f2 "$counts/cargo")" = 0 ]; then echo "0 1 0" > "$counts/cargo"; fi
  if [ -x .venv/bin/python ] && [ -f conformance/test_sdk.py ]; then
    .venv/bin/python conformance/test_sdk.py --binary src/rust/target/release/dbrxr-local \
      --counts "$counts/conformance" > "$counts/conformance.log" 2>&1
    [ -s "$counts/conformance" ] || echo "0 1 0" > "$counts/conformance"
  fi
}

if [ "$tier" = default ]; then
  echo "== cargo test and the conformance suite (databricks-sdk against dbrxr-local): beside testthat, their logs below"
  rust_and_conformance &
  beside=$!
fi

echo "== testthat ($tier tier)"
Rscript tools/testthat-summary.R "$tier" "$counts/testthat" "$counts/testthat-failures" "$counts/testthat-times"
# No counts, or no failures file (written last): the run ended early, a failure.
[ -s "$counts/testthat" ] && [ -f "$counts/testthat-failures" ] || echo "0 1 0" > "$counts/testthat"

if [ "$tier" = default ]; then
  wait "$beside"
  echo "== cargo test"
  cat "$counts/cargo.log"
  if [ -f "$counts/conformance.log" ]; then
    echo "== conformance (databricks-sdk against dbrxr-local)"
    cat "$counts/conformance.log"
  fi
  # The live suite in its skip mode only (make test-live runs it for real;
  # make test-slow runs it against a standalone dbrxr-local): its line shows.
  echo "== live suite (make test-live)"
  env -u DBRXR_LIVE_CLUSTER_ID -u DBRXR_LIVE_SCHEMA Rscript tests/live/run.R && echo "0 0 1" > "$counts/live" || echo "0 1 0" > "$counts/live"
fi

echo "== the ten slowest test files ($tier tier, seconds)"
head -n 10 "$counts/testthat-times" 2>/dev/null

# What failed, again, right above the count line: a CI log is often read from its tail.
grep -sE '^test .* FAILED$' "$counts/cargo.log" | sed 's/^test /FAILED cargo test: /; s/ \.\.\. FAILED$//'
cat "$counts/testthat-failures" 2>/dev/null || echo "FAILED testthat: the run ended before it counted its tests (see its output above)"
grep -sE '^FAIL ' "$counts/conformance.log" | sed 's/^FAIL /FAILED conformance: /'
# Only the suites this tier ran have counts (with pipefail, a cat of a missing
# file would fail the line).
for suite in cargo testthat conformance live; do
  if [ -f "$counts/$suite" ]; then cat "$counts/$suite"; fi
done |
  awk '{ p += $1; f += $2; s += $3 }
       END { line = p " passed, " f " failed"; if (s > 0) line = line ", " s " skipped"; print line; exit (f > 0) }'
