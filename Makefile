# Two commands do all set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SAMPLE := resources/samples/astronaut.png

.PHONY: run test lint bench eval install clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
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
