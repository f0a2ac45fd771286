# agentstream developer commands. Everything runs in a local virtualenv (.venv).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo install clean bench bench-quick soak

$(STAMP): setup.cfg setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -q

demo: $(STAMP)
	$(PY) -m agentstream demo

soak: $(STAMP)
	$(PY) -m pytest -q -m soak --timeout=600 tests

clean:
	rm -rf $(VENV) build *.egg-info

# Benchmarks (bench/; see docs/performance.rst). They need the bench extra (openai, pydantic-ai).
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP) setup.cfg setup.py
	$(PY) -m pip install -q -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) -m bench

bench-quick: $(BENCH_STAMP)
	$(PY) -m bench --quick --ci

# Documentation (docs/): Sphinx with -W, every warning is an error.
DOCS_STAMP := $(VENV)/.docs-installed
.PHONY: docs

$(DOCS_STAMP): $(STAMP) setup.cfg setup.py
	$(PY) -m pip install -q -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html -d docs/_build/doctrees docs docs/_build/html
