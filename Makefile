# The two commands a newcomer needs: `make demo` and `make test`. Each sets itself up.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export NML_DISABLE_USAGE_LOGGING := 1
export PYTHONDONTWRITEBYTECODE := 1

# The first Python 3.11 or 3.12 on PATH.
PYTHON ?= $(shell for p in python3.11 python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(not (3,11) <= sys.version_info[:2] < (3,13))' \
	&& { echo $$p; break; }; done)

.PHONY: help demo test test-fast lint bench diagrams db-server db-stop serve dashboard poll clean venv

help:
	@echo "make demo       run the pipeline end to end (sets everything up)"
	@echo "make test       lint, type-check and run every test (sets everything up)"
	@echo "make test-fast  the tests not marked slow"
	@echo "make serve      serve the streaming simulator on INGEST_PORT (5000)"
	@echo "make dashboard  serve the monitoring API and dashboard on MONITORING_PORT (5001)"
	@echo "make poll       run monitoring whenever new predictions land"
	@echo "make bench      benchmarks: insert path, Spark jobs, monitoring (bench/*.py)"
	@echo "make diagrams   re-render PlantUMLDiagrams/*.puml to PNG"
	@echo "make db-stop    stop the project-local MariaDB, if one was started"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or 3.12 is required (python3.11 not found)" >&2; exit 1; }
	@echo "==> virtualenv $(VENV) with $(PYTHON)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e ".[dev]"
	@rm -f $(VENV)/.installed-* && touch $@

venv: $(STAMP)

demo: $(STAMP)
	@scripts/system_deps.sh demo
	@$(PY) scripts/demo.py

test: $(STAMP)
	@scripts/system_deps.sh test
	@$(PY) -m db server
	@echo "==> ruff"
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .
	@echo "==> mypy"
	@$(VENV)/bin/mypy config db ingest eda spark_jobs monitoring scripts bench
	@echo "==> pytest"
	@$(VENV)/bin/pytest

test-fast: $(STAMP)
	@$(PY) -m db server
	@$(VENV)/bin/pytest -m "not slow"

dashboard: $(STAMP)
	@$(PY) -m db server && $(PY) -m monitoring serve

poll: $(STAMP)
	@$(PY) -m db server && $(PY) -m monitoring poll

serve: $(STAMP)
	@$(PY) -m db server && $(PY) -m db init && $(PY) -m ingest serve

bench: $(STAMP)
	@$(PY) -m db server
	@$(PY) bench/ingest.py
	@$(PY) bench/monitoring.py
	@$(PY) bench/spark.py

diagrams:
	@PlantUMLDiagrams/render.sh

db-server: $(STAMP)
	@$(PY) -m db server

db-stop: $(STAMP)
	@$(PY) -m db server --stop

clean:
	rm -rf $(VENV) output .pytest_cache .mypy_cache .ruff_cache
