# medvault: `make run` starts the embedded setup, `make test` runs the tests.
# Needs only GNU make and Python 3.11+; everything else is installed into .venv.

SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
INSTALLED_BENCH := $(VENV)/.installed-bench
PYTEST_ARGS ?=
# `make test` runs the tests in this many processes (pytest-xdist); the suites that start
# whole installations run one after another in one of them (tests/scheduling.py).
TEST_WORKERS ?= 2
# The machine's own PostgreSQL: its tests fail, never skip, when it is asked for and missing.
# Set it empty (MEDVAULT_TEST_POSTGRES_URL= make test) on a machine without one to skip them.
export MEDVAULT_TEST_POSTGRES_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/postgres
BENCH_RESULTS ?= bench-results.json
# How long each suite of `make soak` keeps going (its short form runs in `make test`).
SOAK_SECONDS ?= 300
SOAK_SUITES := tests/soak tests/fuzz tests/atheris tests/faults tests/load

# The first interpreter on PATH that is Python 3.11 or newer (evaluated only when needed).
PYTHON_CANDIDATES := python3.11 python3.12 python3.13 python3
PYTHON = $(shell for p in $(PYTHON_CANDIDATES); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; \
	done)

.PHONY: help install run test lint bench soak fuzz migration clean

help:
	@echo "make run        install, migrate the database, start medvault (API on http://127.0.0.1:8000, worker, beat)"
	@echo "make test       install and run the tests (PYTEST_ARGS='-k ...' to narrow)"
	@echo "make lint       ruff, ruff format --check, mypy, import-linter, bandit (high severity)"
	@echo "make bench      benchmarks, results in $(BENCH_RESULTS)"
	@echo "make soak       the reliability suites' long form (SOAK_SECONDS=$(SOAK_SECONDS)), figures in soak-results.json"
	@echo "make fuzz       the OpenAPI fuzzing suite alone (short form; MEDVAULT_SOAK=long for the long one)"
	@echo "make migration m='what changed'   autogenerate a database migration"
	@echo "make clean      remove var/ and test artifacts (keeps .venv)"

# Reinstalls only when pyproject.toml changes, so a second `make test` starts at once.
$(INSTALLED): pyproject.toml
	@python="$(PYTHON)"; \
	if [ -z "$$python" ]; then echo "make: medvault needs Python 3.11 or newer on PATH" >&2; exit 1; fi; \
	if [ ! -x $(BIN)/python ]; then echo "creating $(VENV) with $$python"; $$python -m venv $(VENV); fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

$(INSTALLED_BENCH): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	touch $@

install: $(INSTALLED)

# `medvault up` starts a Celery worker and beat beside the web server and stops them with it.
run: $(INSTALLED)
	$(BIN)/medvault db upgrade
	$(BIN)/medvault up

# The browser tests drive Debian's Chromium (never a browser downloaded by a test tool).
CHROMIUM := /usr/bin/chromium
SUDO = $(if $(filter 0,$(shell id -u)),,sudo)

$(CHROMIUM):
	@command -v apt-get >/dev/null || { echo "make: the browser tests need Chromium at $@" >&2; exit 1; }
	@echo "installing Debian's chromium for the browser tests"
	$(SUDO) apt-get install -y --no-install-recommends chromium || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends chromium; }

# The deployment tests check docker-compose.yml with Debian's docker-compose (v1.29, the Python one).
DOCKER_COMPOSE := /usr/bin/docker-compose

$(DOCKER_COMPOSE):
	@command -v apt-get >/dev/null || { echo "make: the deployment tests need docker-compose at $@" >&2; exit 1; }
	@echo "installing Debian's docker-compose for the deployment tests"
	$(SUDO) apt-get install -y --no-install-recommends docker-compose || \
		{ $(SUDO) apt-get update && $(SUDO) apt-get install -y --no-install-recommends docker-compose; }

test: $(INSTALLED) $(CHROMIUM) $(DOCKER_COMPOSE)
	$(BIN)/pytest --numprocesses $(TEST_WORKERS) --dist loadscope $(PYTEST_ARGS)

lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit --quiet --configfile pyproject.toml --severity-level high --recursive api infra keys vault workers

bench: $(INSTALLED_BENCH)
	MEDVAULT_BENCH_OUT=$(BENCH_RESULTS) $(BIN)/python -m tests.perf

# The long form of tests/soak; `make test` runs their short form with everything else.
soak: $(INSTALLED)
	MEDVAULT_SOAK=long MEDVAULT_SOAK_SECONDS=$(SOAK_SECONDS) $(BIN)/pytest $(SOAK_SUITES) $(PYTEST_ARGS)

# The OpenAPI fuzzing suite alone (it runs in `make test` too, and its long form in `make soak`).
fuzz: $(INSTALLED)
	$(BIN)/pytest -m fuzz tests/fuzz $(PYTEST_ARGS)

migration: $(INSTALLED)
	@if [ -z "$(m)" ]; then echo "make: say what changed: make migration m='add consents table'" >&2; exit 1; fi
	$(BIN)/medvault db revision "$(m)"

clean:
	rm -rf var/ .pytest_cache/ .mypy_cache/ .ruff_cache/ .hypothesis/ .import_linter_cache/ \
		$(BENCH_RESULTS) soak-results.json
	find . -path ./$(VENV) -prune -o -type d -name __pycache__ -exec rm -rf {} +
