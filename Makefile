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

# The demo needs only the package itself (no extras): its own stamp, so a fresh checkout streams
# within seconds instead of installing every test extra first. Reuses .venv if it exists.
DEMO_STAMP := $(VENV)/.demo-installed

$(DEMO_STAMP): setup.cfg setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e .
	touch $(DEMO_STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m agentstream demo

soak: $(STAMP)
	$(PY) -m pytest -q -m soak --timeout=600 tests

# Real third-party servers (tests/real/): llama-cpp-python + SmolLM2-135M, fakellm, llmock, in
# their own venv (.venv-real). The first install builds llama-cpp-python (~7-20 min on 2 cores).
REAL_VENV ?= .venv-real
.PHONY: test-real

test-real: $(STAMP)
	PYTHON=$(PYTHON) bash scripts/install-real-servers.sh $(REAL_VENV)
	AGENTSTREAM_REAL=1 AGENTSTREAM_REAL_VENV=$(REAL_VENV) $(PY) -m pytest -q -p no:xdist -m real tests/real

clean:
	rm -rf $(VENV) $(REAL_VENV) build *.egg-info

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
