# age_assets: `make run` builds the whole graph, `make test` runs the tests, `make lint` runs ruff and mypy;
# each sets up .venv first, installing the versions pinned in requirements/constraints.txt.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AGE_ASSETS_DATA_DIR ?= data
export AGE_ASSETS_DATA_DIR
export DAGSTER_HOME ?= $(abspath $(AGE_ASSETS_DATA_DIR))/dagster
CONSTRAINTS := requirements/constraints.txt

.PHONY: setup lock run dev lint test clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	touch $@

# Regenerate the pins (Python 3.11, Linux x86-64) from pyproject.toml's dependencies and its dev extra, keeping
# every pin that still fits. LOCK_FLAGS=--upgrade moves all pins to the newest releases allowed,
# LOCK_FLAGS='--upgrade-package tensorflow' one package; the next make then installs the new pins.
lock:
	[ -x $(BIN)/uv ] || { $(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet -c $(CONSTRAINTS) uv; }
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-unknown-linux-gnu \
		--custom-compile-command 'make lock' --quiet $(LOCK_FLAGS) -o $(CONSTRAINTS)

$(DAGSTER_HOME)/dagster.yaml: data/dagster/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	[ "$(abspath $<)" = "$(abspath $@)" ] || cp $< $@

run: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m age_assets --select '*'

dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m age_assets

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

test: setup
	$(BIN)/pytest -n 2 --dist loadgroup --durations=10

clean:
	rm -rf $(VENV)
