# The two commands of the README's Quick start:
#   make run    install what the local stack needs, then run it (python -m local)
#   make test   install what the tests need (system packages too, as root), then run them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install --quiet --disable-pip-version-check
# The AWS SAM CLI for the deploy checks (sam validate, sam build), in a venv of
# its own because it pins its own dependencies. Kept inside the clone.
SAM_VENV ?= .venv-sam

.PHONY: run test lint format system-deps bench

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-local: pyproject.toml | $(PY)
	$(PIP) -e ".[local]"
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(PIP) -e ".[test]"
	@touch $@

run: $(VENV)/.installed-local
	$(PY) -m local

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/python -m pip install --quiet --disable-pip-version-check "aws-sam-cli>=1.140,<2"
	@touch $@

test: system-deps $(VENV)/.installed-test $(SAM_VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

system-deps:
	@bash scripts/system-deps.sh

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .

format: $(VENV)/.installed-test
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .
