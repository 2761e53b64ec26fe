# Two commands for a newcomer: `make dev` runs the whole service on the embedded stack,
# `make test` runs the test suite (SQLite, then PostgreSQL at 127.0.0.1:5432).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PG_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: dev test lint install

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,test]'
	touch $@

install: $(BIN)/.installed

dev: $(BIN)/.installed
	$(BIN)/elevate dev

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/mypy elevate api workflows activities worker.py

# The slowest tests of each half are listed: the suite has to stay well under 20 minutes.
test: $(BIN)/.installed lint
	$(BIN)/python -m pytest --cov --cov-report=term:skip-covered --durations=15
	ELEVATE_TEST_DATABASE=postgresql ELEVATE_TEST_PG_URL=$(PG_URL) $(BIN)/python -m pytest --durations=15
