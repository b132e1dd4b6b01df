# Every target first makes sure .venv exists and holds the project as described
# by pyproject.toml; a fresh clone needs no other step.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUDY ?=
WORKERS ?=
ARGS ?=
# STUDY, WORKERS and ARGS reach the shell as environment variables, never as command text:
# `make ablation 'STUDY=x; rm -rf ~'` runs no command. ARGS is split on spaces (not globbed).
export STUDY WORKERS ARGS

.PHONY: help install run test test-fast test-pg lint typecheck ablation tune report bench clean

help:
	@echo "make run                     train the default run (MNIST-1D CNN)"
	@echo "make test                    run the test suite"
	@echo "make test-fast               quick loop: every module's fast tests, not the slow-marked"
	@echo "make ablation STUDY=NAME     run a study from studies/NAME.yaml (no STUDY: list them)"
	@echo "make tune STUDY=NAME         Optuna search for a tuning study"
	@echo "make report STUDY=NAME       (re)build results/NAME/report.{html,md}"
	@echo "make lint                    ruff"
	@echo "make typecheck               mypy over harness/ (settings in pyproject.toml)"

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	set -f; $(BIN)/harness run $$ARGS

test: $(STAMP)
	set -f; $(BIN)/python -m pytest $$ARGS

test-fast: $(STAMP)
	set -f; $(BIN)/python -m pytest -m "not slow" -n 2 --dist worksteal $$ARGS

test-pg: $(STAMP)
	@test -n "$$HARNESS_TEST_POSTGRES_URL" || { echo "set HARNESS_TEST_POSTGRES_URL (see bench/pg_server.sh)"; exit 2; }
	set -f; $(BIN)/python -m pytest tests/study/test_postgres.py tests/study/test_launch_pg.py $$ARGS

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/python -m mypy

ablation: $(STAMP)
	@set -f; if [ -z "$$STUDY" ]; then $(BIN)/harness studies --kind ablation; \
	else $(BIN)/harness ablation "$$STUDY" $${WORKERS:+--workers "$$WORKERS"} $$ARGS; fi

tune: $(STAMP)
	@set -f; if [ -z "$$STUDY" ]; then $(BIN)/harness studies --kind tune; \
	else $(BIN)/harness tune "$$STUDY" $${WORKERS:+--workers "$$WORKERS"} $$ARGS; fi

report: $(STAMP)
	set -f; $(BIN)/harness report "$$STUDY" $$ARGS

bench: $(STAMP)
	set -f; $(BIN)/python bench/run_all.py $$ARGS

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
