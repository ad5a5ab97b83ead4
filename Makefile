# traffic-router — one set of verbs for people and CI. `make help` lists them.
# An optimized (PGO/LTO) build of Python 3.11+ when the machine has one: scripts/pick_python.py.
PYTHON ?= $(shell python3 scripts/pick_python.py 2>/dev/null || echo python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-11s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) --version))"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP) ## create .venv and install the package with its dev extras

# A second venv with the lowest uvicorn and httptools we accept (constraints/lowest.txt).
LOWEST := .venv-lowest
$(LOWEST)/.installed: pyproject.toml constraints/lowest.txt
	$(PYTHON) -m venv $(LOWEST)
	$(LOWEST)/bin/pip install --quiet --upgrade pip
	$(LOWEST)/bin/pip install --quiet -c constraints/lowest.txt -e '.[test]'
	@touch $@

demo: $(STAMP) ## run the live demo: two model versions behind the router, a canary ramp (Ctrl-C stops)
	$(BIN)/traffic-router demo

# Most tests wait on real processes and sockets, not on the CPU: more workers than cores.
# A test module per worker at a time (its module fixtures shared), in the order
# tests/conftest.py gives (the slowest modules first), not xdist's (the largest first).
WORKERS  ?= 4
PARALLEL := -n $(WORKERS) --dist loadfile --no-loadscope-reorder

test: $(STAMP) lint browser redis prometheus ## lint, type-check, the whole test suite, then test-lowest
	$(BIN)/python -m pytest $(PARALLEL)
	$(MAKE) --no-print-directory test-lowest

test-lowest: $(LOWEST)/.installed ## the listener's and the pool's tests on the lowest uvicorn/httptools
	$(LOWEST)/bin/python -m pytest tests/server tests/upstream -q $(PARALLEL)

test-fast: $(STAMP) ## the in-process tests alone, no lint and no e2e (tests/conftest.py)
	$(BIN)/python -m pytest -m "not e2e" -q $(PARALLEL)

# The dashboard test drives Debian's Chromium; install it when it is missing and we can.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium not installed: the dashboard browser test will be skipped"; }

# The replica tests run real redis-server processes (Debian's package); install it when missing.
redis:
	@command -v redis-server >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq redis-server >/dev/null) || \
		echo "redis-server not installed: the replica tests will be skipped"; }

# The analysis tests query a real Prometheus (Debian's package); install it when missing.
prometheus:
	@command -v prometheus >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		(apt-get update -qq && apt-get install -y -qq prometheus >/dev/null) || \
		echo "prometheus not installed: the Prometheus check test will be skipped"; }

lint: $(STAMP) ## ruff and mypy (strict)
	$(BIN)/ruff check router strategies tests bench scripts
	$(BIN)/mypy

bench: $(STAMP) redis ## benchmark against nginx and a direct call (installs nginx and wrk when missing)
	$(BIN)/python bench/run.py

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) $(LOWEST) .mypy_cache .pytest_cache .ruff_cache

.PHONY: help venv demo test test-lowest test-fast lint bench clean browser redis prometheus
