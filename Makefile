# Two commands matter: `make run` (UI + daemon + simulated stream) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

export CT_DATA_DIR ?= $(CURDIR)/data
export CT_DUCKDB_PATH ?= $(CT_DATA_DIR)/warehouse.duckdb
export DAGSTER_HOME ?= $(CT_DATA_DIR)/dagster_home

.PHONY: install run test bench audit screenshots

$(INSTALLED): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build on disk; anything else would pull a multi-GB CUDA build.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $@

install: $(INSTALLED)

run: install
	$(PY) -m ct_assets.cli demo

test: install
	# Debian's PostgreSQL for the Postgres end-to-end test (installed when missing; never fails here:
	# without it that test skips and says why).
	scripts/postgres_up.sh || echo "make test: no PostgreSQL server can be installed here"
	$(VENV)/bin/pytest -q

bench: install
	$(PY) benchmarks/run_all.py

audit: install
	$(PY) -m pip install --quiet -e ".[test,audit]"
	$(VENV)/bin/pip-audit --progress-spinner off --skip-editable

screenshots: install
	$(PY) scripts/screenshots.py --out docs/screenshots
