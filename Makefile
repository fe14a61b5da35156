# linctl — `make install` then `make test` set up and check a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINCTL_DATA ?= $(abspath ../shared/data)
RUNS ?= runs
export LINCTL_DATA

.PHONY: install test test-all lint reproduce clean

install:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test,peers]'

test:
	$(BIN)/pytest -q

test-all:
	$(BIN)/pytest -q -m 'not gpu'

lint:
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check linctl tests
	$(BIN)/ruff format --check linctl tests

reproduce:
	PATH=$(abspath $(BIN)):$$PATH RUNS=$(RUNS) bash pipelines/reproduce.sh

clean:
	rm -rf $(RUNS)
