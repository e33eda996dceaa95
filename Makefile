# skuaudit: `make run` serves the app, `make test` runs everything CI runs.
SHELL := /bin/bash
PY ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup run test test-fast lint bench system-deps node-deps clean-demo

$(STAMP): requirements.txt requirements-nodeps.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

NODE_STAMP := node_modules/.installed-stamp
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(STAMP) $(NODE_STAMP)

run: setup
	$(BIN)/skuaudit serve

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two pytest workers (pytest-xdist), one per core of the CI machine: most tests keep one core busy
# (Python, tracing, a browser waiting), so two at once nearly halve the wall time. --dist loadscope
# keeps each module's tests in one worker, so a module-scoped fixture (a server, an export) is
# built once; --no-loadscope-reorder keeps the order tests/conftest.py gives (the longest modules
# first) instead of xdist's largest-module-first. TEST_WORKERS=0 runs them in this process.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder

test: setup system-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST)

# The inner loop: everything but the tests marked slow (training a model, driving a browser).
# CI runs `make test`, which includes them.
test-fast: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PYTEST) -m "not slow"

bench: setup
	$(BIN)/python bench/run_all.py

clean-demo: setup
	$(BIN)/skuaudit db remove-demo

# System packages the tests need (the browser test and the PostgreSQL suite); installed only when
# missing and when we may use apt (root or passwordless sudo).
system-deps:
	@bash scripts/install_system_deps.sh
