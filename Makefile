# Streamwatch: `make demo` starts the whole stack, `make test` runs every check.
# Both set everything up themselves on a fresh machine (venv, package, Debian's Prometheus).

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup system-deps test lint unit bench clean

setup: system-deps $(STAMP)

# Reinstall only when the dependency list changes; editable, so the root scripts use the tree.
# Debian's packages come first (order-only): on a fresh machine they include python3-venv.
$(STAMP): pyproject.toml | system-deps
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

system-deps:
	@PYTHON=$(PYTHON) scripts/install-system-deps.sh

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

# Tests run in parallel (pytest-xdist): most of the suite's wall time is waiting on real processes, so
# more workers than the 2 cores pay off (4: 21 min sequential -> 8 min 42 s; docs/benchmarks.md). The
# slowest 15 are printed at the end, so the CI log shows what to shorten next.
TEST_WORKERS ?= 6
PYTEST := $(VENV)/bin/pytest -n $(TEST_WORKERS) --durations=15

# Tests marked quiet_cpu load the CPUs and watch the host (tests/test_watch_load_e2e.py): they run alone,
# after the parallel ones, and skip with the measured load when other processes keep the machine busy.
test: setup lint
	$(PYTEST) -m "not quiet_cpu"
	$(VENV)/bin/pytest -m quiet_cpu -rs

# The tests that start no process: the quick check before a commit.
unit: setup
	$(PYTEST) -m "not e2e"

bench: setup
	$(PY) -m bench.monitor
	$(PY) -m bench.detectors

clean:
	rm -rf var .pytest_cache .ruff_cache

# Refresh the dashboard's vendored charting library (uPlot) from npm at the version pinned in
# package-lock.json. Only maintainers need npm; the package, CI and `make demo` use the committed copy.
.PHONY: vendor
vendor:
	npm ci --no-audit --no-fund
	cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css node_modules/uplot/LICENSE \
		dashboard/static/vendor/

# The whole stack on 127.0.0.1 (ports, commands and scrape jobs in stack.toml); Ctrl-C stops all of it.
# Data (TSDB, models, incident log, logs) stays in var/ across runs; `make clean` removes it.
.PHONY: demo
demo: setup
	$(PY) -m stack

# Watch this host instead of the simulator: Prometheus scraping Debian's node exporter, a --config monitor
# on the node_exporter preset (watch.toml, or WATCH=your.toml), the incident detector, Alertmanager and
# the receiver (docs/watch.md). Its data stays in var/watch/.
.PHONY: watch
WATCH ?= watch.toml
watch: setup
	$(PY) -m stack --watch $(WATCH)
