# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := resources/samples/astronaut.png

.PHONY: run test lint bench eval install clean

# mediapipe 0.10.21 (the face models ship in its wheel) has wheels for CPython 3.9-3.12 only: say so up
# front instead of pip's "no matching distribution". A venv left without pip (python3-venv was missing
# the first time) is made again rather than failing on every later run.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' || { \
	  echo "IC-Portrait Studio needs Python 3.10-3.12 (mediapipe 0.10.21 has no wheel for $$($(PYTHON) -V 2>&1))."; \
	  echo "Install one and run, e.g.: make PYTHON=python3.12 run"; exit 1; }
	@$(BIN)/python -m pip --version >/dev/null 2>&1 || { rm -rf $(VENV) && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -q --disable-pip-version-check --upgrade "pip>=24" wheel setuptools
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/python -m icportrait_studio $(SAMPLE)

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/ruff check .
	$(BIN)/lint-imports
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_engine.py

EVAL = $(BIN)/python ../shared/bench/relight_eval.py --data ../shared/data/yaleB-dev

# The benchmark's exact command first; then the same with the photos decoded as what they are (linear).
eval: $(STAMP)
	$(EVAL) --method "cli:$(BIN)/icportrait relight"
	$(EVAL) --method "cli:$(BIN)/icportrait relight" --source A-025E+00
	$(EVAL) --method "cli:$(BIN)/icportrait relight --input-encoding linear"
	$(EVAL) --method "cli:$(BIN)/icportrait relight --input-encoding linear" --source A-025E+00

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
