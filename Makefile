# The documented commands. `make demo`, `make local` and `make test` install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# uv installs the pinned dependencies in seconds (pip takes about a minute); it is itself pinned.
UV_VERSION := 0.13.9
PIP := $(BIN)/uv pip install --quiet --python $(BIN)/python
# Each stamp records what is installed: the local stack alone (demo), or everything (tests, tools).
LOCAL_STAMP := $(VENV)/.installed-local
FULL_STAMP := $(VENV)/.installed-full

.PHONY: install install-local test unit integration lint format typecheck bench demo local layer clean

install: $(FULL_STAMP)

install-local: $(LOCAL_STAMP)

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

# Its own target, so a virtualenv made some other way gets uv too.
$(BIN)/uv: | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(LOCAL_STAMP): pyproject.toml | $(BIN)/uv
	$(PIP) -e '.[local]'
	touch $(LOCAL_STAMP)

$(FULL_STAMP): pyproject.toml | $(BIN)/uv
	$(PIP) -e '.[dev,learn]'
	touch $(FULL_STAMP) $(LOCAL_STAMP)

test: install
	$(BIN)/python -m pytest -n 2 -q

unit: install
	$(BIN)/python -m pytest -q tests/unit

integration: install
	$(BIN)/python -m pytest -q tests/integration

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python -m leadscore.bench

# The Lambda layer without SAM or Docker (what `sam build` makes of SharedLayer): build/layer/python.
# Its bytecode is for the runtime's Python 3.12: LAYER_PYTHON must be a python3.12 with pip.
LAYER_PYTHON ?= python3.12
layer:
	cd shared && $(LAYER_PYTHON) -m leadscore.layer $(CURDIR)/build/layer

demo: install-local
	$(BIN)/leadscore demo

local: install-local
	$(BIN)/leadscore local

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .aws-sam build
