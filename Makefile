# The README's two promises: `make demo` and `make test` work on a fresh
# Debian/Ubuntu machine with cargo. Both install what is missing first.
SHELL := /bin/bash
export PATH := $(PATH):$(HOME)/.cargo/bin
R_LIB := $(CURDIR)/build/lib
export R_LIBS := $(R_LIB)
CARGO := cargo
CRATE := src/rust/Cargo.toml
VERSION := $(shell sed -n 's/^Version: //p' DESCRIPTION)
R_SOURCES := $(shell find R src/rust/src src/rust/Cargo.toml src/rust/Cargo.lock src/Makevars src/entrypoint.c inst DESCRIPTION NAMESPACE -type f 2>/dev/null)

.PHONY: all deps build install local-bin test test-slow test-live demo check bench wrappers docs venv runtimes clean soak

all: build

deps: build/.deps
build/.deps: tools/install-deps.sh
	@mkdir -p build
	bash tools/install-deps.sh
	@touch $@

# The venv is the local cluster's Python: Debian's rpy2 through system site
# packages, PySpark + PyArrow for the `spark` session and table scoring, and the
# official databricks-sdk for the conformance suite, MLflow for the local
# tracking server and R models as pyfuncs.
VENV_PYTHON := $(CURDIR)/.venv/bin/python
venv: .venv/.ok
.venv/.ok: conformance/requirements.txt tools/requirements-spark.txt tools/requirements-mlflow.txt | deps
	/usr/bin/python3 -m venv --system-site-packages .venv
	.venv/bin/pip install -q --disable-pip-version-check -r conformance/requirements.txt -r tools/requirements-spark.txt -r tools/requirements-mlflow.txt
	@touch $@

# Runtime profiles (issue 35): one venv per Databricks Runtime LTS whose Python
# minor version this machine can install, pinned to that runtime's libraries
# (tools/runtime-X.txt, which cites the release notes). Contexts and job tasks
# of `local_cluster(runtime = "X")` / `dbrxr-local --runtime X` run it; the
# MLflow server and the conformance suite stay on .venv. Debian 12 has Python
# 3.11, which serves 15.4 LTS; 16.4 LTS needs Python 3.12, which it cannot
# install. rpy2 is Debian's, through system site packages as in .venv.
RUNTIMES := 15.4
RUNTIME_PYTHON_15.4 := /usr/bin/python3.11
runtimes: $(foreach r,$(RUNTIMES),.venv-$(r)/.ok)
runtime-%: .venv-%/.ok ;
.venv-%/.ok: tools/runtime-%.txt | deps
	rm -rf .venv-$*
	$(RUNTIME_PYTHON_$*) -m venv --system-site-packages .venv-$*
	.venv-$*/bin/pip install -q --disable-pip-version-check -r tools/runtime-$*.txt
	@touch $@

wrappers:
	Rscript tools/gen-wrappers.R

docs: install
	Rscript -e 'roxygen2::roxygenise(load_code = roxygen2::load_installed)'

install: build/.installed
build/.installed: $(R_SOURCES) | deps venv
	Rscript tools/gen-wrappers.R --check
	@mkdir -p $(R_LIB)
	flock build/.install.lock R CMD INSTALL --library=$(R_LIB) . 2>&1 | grep -vE '^\s+(Compiling|Checking|Downloaded|Downloading)' ; test $${PIPESTATUS[0]} -eq 0
	@touch $@

local-bin: | deps
	$(CARGO) build --release --manifest-path $(CRATE) --bin dbrxr-local

build: install local-bin

# The local cluster runs the venv's Python by default in these targets, and
# finds the runtime profiles' venvs (.venv-15.4, ...) here.
test test-slow demo bench check: export DBRXR_PYTHON := $(VENV_PYTHON)
test test-slow demo bench check: export DBRXR_RUNTIME_HOME := $(CURDIR)

# Two tiers. `make test` (the README's test command) covers every behaviour
# once: cargo test, testthat but its test-slow-*.R files, and the SDK
# conformance suite. `make test-slow` runs only what repeats a behaviour at
# scale or waits on a clock (tests/testthat/test-slow-*.R, DBRXR_TEST_SLOW=true).
test: build venv
	bash tools/run-tests.sh default

# The slow tier also builds the runtime profiles' venvs (pip, ~2.5 min each
# the first time) and runs the shipped code in them (test-slow-runtime.R).
test-slow: build venv runtimes
	bash tools/run-tests.sh slow

# The live suite (tests/live) against the workspace in the environment
# (DATABRICKS_HOST + a token or profile, DBRXR_LIVE_CLUSTER_ID,
# DBRXR_LIVE_SCHEMA, optional DBRXR_LIVE_STAGING). Without them: one skip line,
# exit 0, and nothing is built.
test-live:
	@if Rscript tests/live/run.R --configured; then $(MAKE) --no-print-directory build && Rscript tests/live/run.R; fi

demo: build venv
	Rscript inst/scripts/demo.R

check: build venv
	rm -rf build/check && mkdir -p build/check
	cd build/check && R CMD build $(CURDIR) && \
	  _R_CHECK_FORCE_SUGGESTS_=false R CMD check --no-manual dbrxr_$(VERSION).tar.gz

bench: build venv
	Rscript bench/bench.R

# The full fault-injection runs: 1,000 remote_score() calls under 30% 429 +
# 10% 503 + 5% dropped connections (make test runs 15, make test-slow 60),
# and 2 x 100 calls while contexts are evicted every 0.05 s (2 x 10, 2 x 50).
soak: build
	DBRXR_TEST_SLOW=true DBRXR_FAULT_CALLS=1000 DBRXR_EVICT_CALLS=100 Rscript -e 'testthat::test_dir("tests/testthat", package = "dbrxr", load_package = "installed", filter = "slow-request-path", reporter = "summary", stop_on_failure = TRUE)'

clean:
	rm -rf build .venv src/rust/target src/*.o src/*.so
