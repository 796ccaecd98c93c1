#!/usr/bin/env bash
# Runs one tier of the test suites and ends with the ten slowest test files,
# what failed, and one plain line: `N passed, N failed[, N skipped]`.
#
#   bash tools/run-tests.sh          # the default tier (make test): cargo test
#                                    # (Rust), testthat (R, against real local
#                                    # clusters) but its test-slow-*.R files, the
#                                    # conformance suite (the official
#                                    # databricks-sdk for Python against dbrxr-local)
#   bash tools/run-tests.sh slow     # the slow tier (make test-slow): testthat's
#                                    # test-slow-*.R files only
# Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
tier="${1:-default}"
export R_LIBS="$PWD/build/lib${R_LIBS:+:$R_LIBS}"
export PATH="$PATH:$HOME/.cargo/bin"
counts="$(mktemp -d)"
trap 'rm -rf "$counts"' EXIT

if [ "$tier" = default ]; then
echo "== cargo test"
cargo test --release --manifest-path src/rust/Cargo.toml 2>&1 | tee "$counts/cargo.log"
cargo_rc=${PIPESTATUS[0]}
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1); if ($(i) ~ /^ignored;?$/) s += $(i-1) } }
     END { print p+0, f+0, s+0 }' "$counts/cargo.log" > "$counts/cargo"
if [ "$cargo_rc" != 0 ] && [ "$(cut -d' ' -f2 "$counts/cargo")" = 0 ]; then echo "0 1 0" > "$counts/cargo"; fi
fi

echo "== testthat ($tier tier)"
Rscript tools/testthat-summary.R "$tier" "$counts/testthat" "$counts/testthat-failures" "$counts/testthat-times"
[ -s "$counts/testthat" ] || echo "0 1 0" > "$counts/testthat"

if [ "$tier" = default ]; then

if [ -x .venv/bin/python ] && [ -f conformance/test_sdk.py ]; then
  echo "== conformance (databricks-sdk against dbrxr-local)"
  .venv/bin/python conformance/test_sdk.py --binary src/rust/target/release/dbrxr-local \
    --counts "$counts/conformance" 2>&1 | tee "$counts/conformance.log"
  [ -s "$counts/conformance" ] || echo "0 1 0" > "$counts/conformance"
fi

# The live suite in its skip mode only (make test-live runs it for real; the
# testthat suite runs it against a standalone dbrxr-local): its line shows.
echo "== live suite (make test-live)"
env -u DBRXR_LIVE_CLUSTER_ID -u DBRXR_LIVE_SCHEMA Rscript tests/live/run.R && echo "0 0 1" > "$counts/live" || echo "0 1 0" > "$counts/live"
fi

echo "== the ten slowest test files ($tier tier, seconds)"
head -n 10 "$counts/testthat-times" 2>/dev/null

# What failed, again, right above the count line: a CI log is often read from its tail.
grep -sE '^test .* FAILED$' "$counts/cargo.log" | sed 's/^test /FAILED cargo test: /; s/ \.\.\. FAILED$//'
cat "$counts/testthat-failures" 2>/dev/null || echo "FAILED testthat: the run ended before it counted its tests (see its output above)"
grep -E '^FAIL ' "$counts/conformance.log" 2>/dev/null | sed 's/^FAIL /FAILED conformance: /'
cat "$counts"/cargo "$counts"/testthat "$counts"/conformance "$counts"/live 2>/dev/null |
  awk '{ p += $1; f += $2; s += $3 }
       END { line = p " passed, " f " failed"; if (s > 0) line = line ", " s " skipped"; print line; exit (f > 0) }'
