# Everyday tasks. `make test` works on a fresh machine with nothing but Python 3.11+.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SEED ?= 1

.PHONY: test test-fast check fmt run stop sim bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration and not chaos"

check: $(STAMP)
	$(BIN)/pip install -q -e '.[test,dev]'
	$(BIN)/ruff format --check replnode tests scripts
	$(BIN)/ruff check replnode tests scripts
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/pip install -q ruff
	$(BIN)/ruff format replnode tests scripts

run: $(STAMP)
	rm -rf ./data
	$(BIN)/replctl cluster start --nodes 3 --dir ./data

stop: $(STAMP)
	$(BIN)/replctl cluster stop --dir ./data

sim: $(STAMP)
	REPLNODE_SEED=$(SEED) $(BIN)/python -m pytest -q tests/sim -k replay

clean:
	rm -rf $(VENV) data .pytest_cache
