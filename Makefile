# Two commands do everything: `make demo` and `make test` (see README).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8501
ADDRESS ?= 127.0.0.1
PYTEST_ARGS ?=

.PHONY: demo test install install-test samples run serve bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

# Synthetic extracts are generated once (deterministic); delete data_samples/.synthetic to regenerate.
samples: install
	@if [ ! -f data_samples/.synthetic ] || [ ! -f data_samples/ae_attendances.csv ]; then \
		$(BIN)/outcomes samples; \
	else echo "synthetic extracts already in data_samples/"; fi

run: samples
	$(BIN)/outcomes run

serve: install
	$(BIN)/outcomes serve --port $(PORT) --address $(ADDRESS)

demo: run serve

# Two workers (pytest-xdist): the suite is mostly waiting on subprocess runs and a browser.
PYTEST_WORKERS ?= 2
test: install-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) $(PYTEST_ARGS)

bench: install-test
	$(BIN)/python bench/pipeline_throughput.py --rows 1000000
	$(BIN)/python bench/disclosure_scale.py
	$(BIN)/python bench/dashboard_latency.py

clean:
	rm -rf var data_samples/.synthetic data_samples/ae_attendances.csv data_samples/maternity_bookings.csv \
		data_samples/police_incidents.parquet data_samples/catchments.csv
