# The two commands that matter:  make demo   and   make test
VENV   ?= .venv
PY     := $(VENV)/bin/python
export LLMOPS_HOME ?= $(CURDIR)/.llmops
export TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS :=
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup demo up settings test test-fast lint typecheck bench clean help

help:
	@echo "make demo   - set up and run collection, annotation, fine-tuning and evaluation through Airflow's scheduler"
	@echo "make test   - set up and run the whole test suite (what CI runs)"
	@echo "make test-fast - the fast tier (no slow / scheduler tests): run it on every change"
	@echo "make up     - Airflow standalone UI (SQLite) with the project's DAGs and sample data"
	@echo "make settings - apply airflow_settings.yaml (connections, pools, variables) to the Airflow of AIRFLOW_HOME"
	@echo "                (or AIRFLOW__DATABASE__SQL_ALCHEMY_CONN); SETTINGS=FILE for another file; idempotent"
	@echo "make bench  - run the benchmarks, write benchmarks/results/*.json and BENCHMARKS.md"
	@echo "make lint   - ruff (incl. Airflow 3 AIR rules) and mypy"

setup:
	@bash scripts/setup.sh

demo: setup
	$(PY) scripts/local_airflow.py demo --home $(LLMOPS_HOME)

up: setup
	$(PY) scripts/local_airflow.py up --home $(LLMOPS_HOME)

SETTINGS ?= airflow_settings.yaml
settings: setup
	$(PY) scripts/apply_airflow_settings.py $(SETTINGS)

# Tiers (markers in pyproject.toml): `make test` runs everything (what CI runs); `make test-fast`
# skips the `slow` and `scheduler` tiers and is what to run on every change. Both run on
# PYTEST_WORKERS pytest-xdist workers (0: in one process); a test file stays on one worker.
PYTEST_WORKERS ?= 2
XDIST := -n $(PYTEST_WORKERS) --dist loadfile --no-loadscope-reorder

test: setup
	@bash scripts/setup_browser.sh
	$(VENV)/bin/ruff check dags plugins include tests benchmarks scripts
	$(PY) -m pytest -q $(XDIST) --durations=25 $(PYTEST_ARGS)

test-fast: setup
	$(VENV)/bin/ruff check dags plugins include tests benchmarks scripts
	$(PY) -m pytest -q -m "not slow and not scheduler" $(XDIST) --durations=10 $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check dags plugins include tests benchmarks scripts
	$(VENV)/bin/ruff check --select AIR dags plugins include
	$(VENV)/bin/mypy

bench: setup
	$(PY) benchmarks/run_all.py

clean:
	rm -rf .llmops .pytest_cache .mypy_cache .ruff_cache build *.egg-info
