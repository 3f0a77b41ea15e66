# The two commands of the README's Quick start:
#   make run    install what the local stack needs, then run it (python -m local)
#   make test   install what the tests need (system packages too, as root), then run them
# And:
#   make bench         a short run of every benchmark (about two minutes): checks they
#                      work; the figures in docs/benchmarks.md come from the full
#                      commands written there, on an otherwise idle machine
#   make requirements  rewrite the requirements files from pyproject.toml
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# uv installs the same pinned ranges as pip, several times faster (pip spent most
# of a fresh clone's install resolving and byte-compiling botocore and moto one
# file at a time); it byte-compiles too, on every core, so that the tests' many
# processes do not each compile what they import first.
UV_PIN := "uv>=0.9,<1"
INSTALL = $(1)/bin/python -m pip install --quiet --disable-pip-version-check $(UV_PIN) \
	&& $(1)/bin/uv pip install --quiet --compile-bytecode --python $(1)/bin/python
# The AWS SAM CLI for the deploy checks (sam validate, sam build), in a venv of
# its own because it pins its own dependencies. Kept inside the clone.
SAM_VENV ?= .venv-sam

.PHONY: run test lint format system-deps bench requirements

$(PY):
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-local: pyproject.toml | $(PY)
	$(call INSTALL,$(VENV)) -e ".[local]"
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(PY)
	$(call INSTALL,$(VENV)) -e ".[test]"
	@touch $@

run: $(VENV)/.installed-local
	$(PY) -m local

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(call INSTALL,$(SAM_VENV)) "aws-sam-cli>=1.140,<2"
	@touch $@

test: system-deps $(VENV)/.installed-test $(SAM_VENV)/.installed
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	# Two workers, a test file each at a time (module fixtures start once); the
	# fault tests kill and time real processes, so they run alone afterwards.
	$(PY) -m pytest -n 2 --dist loadfile --ignore=tests/resilience
	$(PY) -m pytest tests/resilience

system-deps:
	@bash scripts/system-deps.sh

lint: $(VENV)/.installed-test
	$(PY) -m ruff check .

format: $(VENV)/.installed-test
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

bench: $(VENV)/.installed-local
	$(PY) bench/cost.py
	$(PY) bench/auth_cold_start.py --runs 1
	$(PY) bench/auth_login.py --requests 5 --cost 4
	$(PY) bench/drain_throughput.py --messages 500 --batch-sizes 50,500
	$(PY) bench/drain_lag.py --rate 100 --duration 3 --schedule 1 --timeout 3 --margin 1 --exit-when-idle
	$(PY) bench/store_insert_ceiling.py --messages 500
	$(PY) bench/history.py --messages 500 --runs 5
	$(PY) bench/revocation_sweep.py 100
	$(PY) bench/fanout_load.py throughput --clients 10 --rate 20 --seconds 4 --warmup 1 --processes 1 --against-stock
	$(PY) bench/fanout_load.py hold --connections 50 --processes 1 --hold 1 --wave
	$(PY) bench/soak.py --minutes 0.5 --interval 10 --clients 20 --rate 5
	$(PY) bench/faults.py --connections 100 --restart-clients 100 --admissions 50 -k "replica_killed or restarted"

requirements:
	$(PYTHON) scripts/requirements.py --write
