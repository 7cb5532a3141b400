# The two set-up commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint demo lab clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first: 2.13.0 is the CPU wheel on these machines' disk (a bare `torch` pulls a multi-GB CUDA build).
	$(BIN)/pip install -q torch==2.13.0
	# the onnx extra too, so the ONNX export tests run in `make test` instead of being skipped.
	$(BIN)/pip install -q -e '.[dev,dask,bench,onnx]'
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check nbautoml tests bench
	$(BIN)/mypy

test: $(STAMP)
	$(BIN)/ruff check nbautoml tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

demo: $(STAMP)
	$(BIN)/python -m nbautoml demo

lab: $(STAMP)
	$(BIN)/jupyter lab --ServerApp.ip=127.0.0.1 notebooks/

clean:
	rm -rf $(VENV) .nbautoml .pytest_cache .mypy_cache .ruff_cache
