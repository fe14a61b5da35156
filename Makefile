# linctl — `make install` then `make test` set up and check a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
LINCTL_DATA ?= $(abspath ../shared/data)
# `make reproduce FAST=1`: the small version of every stage, into runs/fast (pipelines/reproduce.mk)
FAST_RUN := $(filter 1,$(FAST))
RUNS ?= $(if $(FAST_RUN),runs/fast,runs)
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

clean:
	rm -rf $(RUNS)

include pipelines/reproduce.mk
