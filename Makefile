# Two commands a new user needs: `make run` and `make test`. Each sets up .venv first (once).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint setup clean

run: $(STAMP)
	$(BIN)/archsearch run --profile mobile_100M

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -q

setup: $(STAMP)

# torch==2.13.0 is pinned first so pip takes the CPU wheel (a bare `torch` pulls a multi-GB CUDA
# build); then the package itself, editable, with the development extras.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
