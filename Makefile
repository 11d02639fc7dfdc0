# Two commands a new user needs: `make run` and `make test`. Each sets up .venv first (once),
# with the versions in constraints.txt: the set the suite was last green on.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# PyTorch is pinned apart: `pip install torch==X` takes the CPU wheel here (a bare `torch` pulls a
# multi-GB CUDA build). Upgrading it is a deliberate edit of this line and of constraints.txt.
TORCH := torch==2.13.0

.PHONY: run test lint setup upgrade clean

run: $(STAMP)
	$(BIN)/archsearch run --profile mobile_100M

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest -q

setup: $(STAMP)

# pip, PyTorch, then the package itself (editable, development extras), all under the constraints.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -c constraints.txt pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(TORCH)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

# On purpose, never on a user's machine by surprise: the newest releases pyproject.toml allows,
# in a separate .venv-latest, then the whole suite; only if it is green is constraints.txt
# rewritten (review and commit it, then `make test` re-installs .venv from it).
upgrade:
	PYTHON=$(PYTHON) TORCH=$(TORCH) bash scripts/upgrade-constraints

clean:
	rm -rf $(VENV) .venv-latest runs .pytest_cache .ruff_cache
