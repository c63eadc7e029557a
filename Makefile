# camstream: `make demo` runs the whole local stack, `make test` runs every check.
# Both set up what they need first (once; later runs work offline).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CAMSTREAM := $(VENV)/bin/camstream
STAMP := $(VENV)/.installed
# Broker data, logs and Spark checkpoints of the demo stay inside this checkout.
export CAMSTREAM_HOME ?= $(CURDIR)/.camstream

.PHONY: setup test-tools demo test test-fast bench capacity lint format lock broker-start \
	broker-stop cluster-start cluster-stop arch notebooks-clean clean

# The tested stack from the lock (requirements.txt: every package pinned, with its hashes),
# then camstream itself. pip refuses any file whose hash is not in the lock.
$(STAMP): requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("camstream needs Python 3.11.5+" if sys.version_info < (3, 11, 5) else 0)'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --progress-bar on --require-hashes -r requirements.txt
	$(PY) -m pip install --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# Re-resolve the lock from pyproject.toml's ranges, keeping its pins where they still fit
# (`make lock UPGRADE=--upgrade` to move them all to the newest).
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra spark --extra station --extra notebooks \
		--extra dev --universal --python-version 3.11.5 --generate-hashes $(UPGRADE) \
		--custom-compile-command "make lock" -o requirements.txt

# Python packages, then the Kafka broker and Spark Kafka connector jars (Maven Central).
setup: $(STAMP)
	$(CAMSTREAM) setup

demo: setup
	$(CAMSTREAM) demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests scripts databricks bench jupyter
	$(VENV)/bin/ruff format --check src tests scripts databricks bench jupyter
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix src tests scripts databricks bench jupyter
	$(VENV)/bin/ruff format src tests scripts databricks bench jupyter

# Chromium for the station's browser tests and an RTSP server for the network-camera test
# (Debian packages; skipped once installed).
test-tools:
	@scripts/install-test-tools.sh

# pytest exits 5 when it collects no test: say so and fail, never pass silently.
test: setup test-tools lint
	@$(PY) -m pytest; status=$$?; \
	if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit $$status

# The inner loop: no Spark sessions, no clusters (about 4 minutes).
test-fast: setup lint
	$(PY) -m pytest -m "not spark and not cluster"

# The benchmark, whole (about two and a half hours on 2 cores; keep the machine quiet):
# bench/results/results.json, then every figures table of the README and docs from it.
bench: setup
	$(PY) bench/run.py
	$(PY) bench/docs_tables.py

# The capacity plan from the benchmark's measured costs (bench/results/results.json).
capacity: $(STAMP)
	$(PY) bench/capacity_plan.py

broker-start: setup
	$(CAMSTREAM) broker start

broker-stop: $(STAMP)
	$(CAMSTREAM) broker stop

# Real local clusters: three Kafka brokers (9092, 9094, 9096) and a Spark master + 2 workers.
cluster-start: setup
	$(CAMSTREAM) broker start --brokers 3 --dir $(CAMSTREAM_HOME)/kafka-cluster
	$(CAMSTREAM) spark-cluster start

cluster-stop: $(STAMP)
	$(CAMSTREAM) spark-cluster stop
	$(CAMSTREAM) broker stop --dir $(CAMSTREAM_HOME)/kafka-cluster

notebooks-clean: $(STAMP)
	$(VENV)/bin/jupyter nbconvert --clear-output --inplace jupyter/*.ipynb

arch: docs/arch.dot
	dot -Tpng -Gdpi=110 docs/arch.dot -o arch.png

clean:
	-$(CAMSTREAM) broker stop
	rm -rf .camstream test-artifacts .pytest_cache .ruff_cache
