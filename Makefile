# binder-build: `make up` runs the farm locally, `make test` proves it.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: up test unit lint install system system-test services screenshots bench clean

up: system $(STAMP)
	$(BIN)/binder-build up

test: system-test $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/unit

bench: system $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check api workers common tests bench
	$(BIN)/mypy

install: system $(STAMP)

system:
	@sh deploy/install-system.sh

system-test:
	@sh deploy/install-system.sh --test

# The README's screenshots, taken from a real farm by the browser and terminal tests.
screenshots: system-test $(STAMP)
	BINDER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -p no:cacheprovider \
		tests/integration/test_build_page.py \
		tests/integration/test_cli.py::test_follow_on_a_terminal_draws_phases_and_the_log

services: system $(STAMP)
	$(BIN)/binder-build services

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) .binder-data .bench-data
