# The two set-up commands of the README. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo study-demo test install install-dev clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q -e ".[local,judge]"

install-dev: $(BIN)/python
	$(BIN)/pip install -q -e ".[local,judge,dev]"

# Install, build the offline demo model (once), evaluate SafeBench-Tiny, print the run directory.
demo: install
	$(BIN)/tis eval

# Install (with the train extra), then the whole study loop offline: the demo model on SafeBench-Tiny,
# LoRA on the 70-record TiS sample, evaluated again, tables and report (docs/study.md).
study-demo: $(BIN)/python
	$(BIN)/pip install -q -e ".[local,judge,train]"
	$(BIN)/tis study run demo

# Install with the test extras and run the whole suite.
test: install-dev
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) runs .pytest_cache
