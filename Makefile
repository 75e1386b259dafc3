# Three entry points, each doing its own set-up in a local virtual environment (.venv):
#   make analyze   – the main job, `infoflow analyze`, on its embedded defaults
#   make test      – the test suite
#   make lint      – ruff (diffusers' settings, pyproject.toml)
# torch is installed first and pinned (TORCH_SPEC) so that the project's `torch>=2.1` range never pulls a
# multi-GB CUDA build; override it for your machine, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: analyze test lint install

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

analyze: $(STAMP)
	$(BIN)/infoflow analyze

test: $(STAMP)
	$(BIN)/python -m pytest -n 2 -q --durations=15

lint: $(STAMP)
	$(BIN)/ruff check .
