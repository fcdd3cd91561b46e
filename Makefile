# Two commands for a newcomer:  `make run`  (serves http://127.0.0.1:8000)  and  `make test`.
# The virtual environment lives in .venv; it is (re)installed only when pyproject.toml changes.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint install

run: $(STAMP)
	$(BIN)/diaspora-bot db upgrade && $(BIN)/diaspora-bot seed demo && $(BIN)/diaspora-bot serve

test: lint
	$(BIN)/pytest -n 2

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy api bot flows
	$(BIN)/lint-imports
	$(BIN)/diaspora-bot i18n check

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)
