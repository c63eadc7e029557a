# camstream: `make demo` runs the whole local stack, `make test` runs every check.
# Both set up what they need first (once; later runs work offline).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CAMSTREAM := $(VENV)/bin/camstream
STAMP := $(VENV)/.installed
# Broker data, logs and Spark checkpoints of the demo stay inside this checkout.
export CAMSTREAM_HOME ?= $(CURDIR)/.camstream

.PHONY: setup browser demo test bench lint format broker-start broker-stop arch notebooks-clean clean

$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("camstream needs Python 3.10+" if sys.version_info < (3, 10) else 0)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Python packages, then the Kafka broker and Spark Kafka connector jars (Maven Central).
setup: $(STAMP)
	$(CAMSTREAM) setup

demo: setup
	$(CAMSTREAM) demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts databricks bench
	$(VENV)/bin/ruff format --check src tests scripts databricks bench

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests scripts databricks bench
	$(VENV)/bin/ruff format src tests scripts databricks bench

# Chromium for the browser test of the station (Debian packages; skipped once installed).
browser:
	@scripts/install-browser.sh

# pytest exits 5 when it collects no test: say so and fail, never pass silently.
test: setup browser lint
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

# The benchmark (about 15 minutes on 2 cores): bench/results/results.json, PNG plots, a table.
bench: setup
	$(PY) bench/run.py

broker-start: setup
	$(CAMSTREAM) broker start

broker-stop: $(STAMP)
	$(CAMSTREAM) broker stop

notebooks-clean: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace jupyter/*.ipynb

arch: docs/arch.dot
	dot -Tpng -Gdpi=110 docs/arch.dot -o arch.png

clean:
	-$(CAMSTREAM) broker stop
	rm -rf .camstream test-artifacts .pytest_cache .ruff_cache
