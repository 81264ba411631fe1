# motwatch: two commands on a fresh machine, `make demo` and `make test`.
# Each target installs what it needs first (a virtualenv in .venv, the
# project with its test extras, the Kafka broker's jars from Maven Central).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install jars prometheus alertmanager chromium node demo demo-web test test-unit test-faults lint schema monitoring broker bench bench-quick clean

install: $(STAMP)

# setuptools says, on every editable install, that folders named like the package may take
# precedence on imports: here they are the package (streams/ and agents/ map into it on purpose).
EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "motwatch needs Python 3.11 or newer (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(EDITABLE) $(BIN)/python -m pip install -q -e '.[test]'
	@touch $(STAMP)

# The broker's jars are fetched once into ~/.cache/motwatch (or $$MOTWATCH_CACHE_DIR).
jars: install
	$(BIN)/motwatch broker --fetch-only

# promtool and prometheus (Debian's package) check and unit-test the alert rules
# and run the end-to-end scrape test.
prometheus:
	bash scripts/install-debian.sh prometheus prometheus promtool

# amtool and prometheus-alertmanager (Debian's package) check and test the generated alert routing.
alertmanager:
	bash scripts/install-debian.sh prometheus-alertmanager amtool prometheus-alertmanager

# Chromium (Debian's package) for the test that drives the demo shop in a real headless browser.
chromium:
	bash scripts/install-debian.sh chromium chromium

# node and npm (Debian's) measure the browser tracker's minified size.
node:
	bash scripts/install-debian.sh nodejs,npm node npm

demo: install jars
	$(BIN)/motwatch demo

# The demo shop in your browser: broker, worker and `motwatch collect --shop` on 127.0.0.1.
demo-web: install jars
	$(BIN)/motwatch demo --web

# Everything; the tests marked background in a second session beside the rest (scripts/run-tests.sh).
test: install jars prometheus alertmanager chromium node
	bash scripts/run-tests.sh $(BIN)/python

# The fast tier: no broker, no promtool, no subprocess, no run at full size.
test-unit: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not integration and not external and not slow"

# The fault suite (tests/faults/): workers killed, rebalanced and stopped mid-stream, judged by
# motwatch detect. FAULTS_LONG=1 make test-faults runs the long variants (more data, more faults).
test-faults: install jars
	$(BIN)/python -m pytest -q -p no:cacheprovider -m faults

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python scripts/lint_imports.py

schema: install
	$(BIN)/python -m motwatch.streams.schema

monitoring: install
	$(BIN)/python -m motwatch.monitoring

broker: install jars
	$(BIN)/motwatch broker

# The benchmark (bench/README.md): its own broker, every figure, a table, and
# bench/results/latest.json. bench-quick: a few figures at small sizes, a few minutes.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(EDITABLE) $(BIN)/python -m pip install -q -e '.[test,bench]'
	@touch $(BENCH_STAMP)

# The peer (bench/quix_peer.py): Quix Streams alone in a virtualenv of its own, since it pins
# pydantic and confluent-kafka below the versions motwatch installs (pyproject.toml, bench-peer).
PEER_VENV  := $(VENV)/peer
PEER_STAMP := $(PEER_VENV)/.installed

$(PEER_STAMP): pyproject.toml $(STAMP)
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEER_VENV)/bin/python -m pip install -q --group bench-peer
	@touch $(PEER_STAMP)

bench: install jars $(BENCH_STAMP) $(PEER_STAMP)
	$(BIN)/python -m bench.run

bench-quick: install jars $(BENCH_STAMP) $(PEER_STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .motwatch-data .pytest_cache .ruff_cache *.egg-info
