# QTS: `make run` starts every service under supervisord; `make test` runs the suite.
# Every target installs what it needs into .venv first, so both work on a fresh machine.

VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
PYTHON ?= python3
QUICK  ?=

.PHONY: install run stop status test test-unit test-integration lint bench chaos clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/qts-ctl up

stop: $(STAMP)
	$(VENV)/bin/qts-ctl down

status: $(STAMP)
	$(VENV)/bin/qts-ctl status

test: $(STAMP)
	$(PY) -m pytest -q

test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

test-integration: $(STAMP)
	$(PY) -m pytest -q tests/integration tests/fault

lint: $(STAMP)
	$(VENV)/bin/ruff check protocol services tests
	$(VENV)/bin/ruff format --check protocol services tests
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

bench: $(STAMP)
	$(PY) -m tests.bench.run $(if $(QUICK),--quick,)

ROUNDS ?= 3
chaos: $(STAMP)
	$(PY) -m tests.fault.chaos --rounds $(ROUNDS)

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
