# lit_rpe — every entry point. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test test-all lint format clean

help: ## List every target with one line each
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

# The venv is rebuilt when pyproject.toml or the constraints change; torch is pinned to the local
# CPU build through constraints.txt so no CUDA wheels (or torchvision) are ever pulled in.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install lit_rpe with its dev extras (CPU torch pinned)

test: $(STAMP) ## Run the fast test suite (excludes tests marked slow or gpu)
	$(PY) -m pytest -q

test-all: $(STAMP) ## Run every test, the slow ones included
	$(PY) -m pytest -q -m 'not gpu'

lint: $(STAMP) ## Check style with ruff
	$(VENV)/bin/ruff check lit_rpe tests bench data
	$(VENV)/bin/ruff format --check lit_rpe tests bench data

format: $(STAMP) ## Format the code with ruff
	$(VENV)/bin/ruff check --fix lit_rpe tests bench data
	$(VENV)/bin/ruff format lit_rpe tests bench data

clean: ## Remove the virtual environment and caches
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
