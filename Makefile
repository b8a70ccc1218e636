# age_assets: `make run` builds the whole graph, `make test` runs the tests; both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
AGE_ASSETS_DATA_DIR ?= data
export AGE_ASSETS_DATA_DIR
export DAGSTER_HOME ?= $(abspath $(AGE_ASSETS_DATA_DIR))/dagster

.PHONY: setup run dev test clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: data/dagster/dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	[ "$(abspath $<)" = "$(abspath $@)" ] || cp $< $@

run: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster asset materialize -m age_assets --select '*'

dev: setup $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -m age_assets

test: setup
	$(BIN)/pytest -n 2 --dist loadgroup --durations=10

clean:
	rm -rf $(VENV)
