# One command sets up and runs the main job; one sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# test processes (pytest-xdist; each test file stays in one); TEST_WORKERS=0 runs them in this one
TEST_WORKERS ?= 2

.PHONY: setup demo test lint docs clean

$(BIN)/slimnas: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,plots]'
	touch $@

setup: $(BIN)/slimnas

demo: setup
	$(BIN)/slimnas search

test: setup
	$(BIN)/python -m pytest tests -n $(TEST_WORKERS) --dist loadfile

# the documentation site, into site/ (a warning fails it); docs/_gen/run_examples.py refreshes
# the example outputs the pages show
docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

lint: setup
	$(BIN)/ruff check slimnas tests benchmarks

clean:
	rm -rf $(VENV) runs site .pytest_cache
