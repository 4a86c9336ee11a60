# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
STAMP_CONSOLE := $(VENV)/.installed-console
STAMP_BENCH := $(VENV)/.installed-bench
STORE ?= events.db
N ?= 200000
STORE_N ?= 5000000
PEERS := build/peers

.PHONY: demo console test lint typecheck pytest test-upstream bench bench-peers bench-backends bench-delivery bench-floors bench-django bench-instructions bench-store profile-delivery clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Reinstall whenever pyproject.toml changes, so a pulled dependency is never missing.
$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test,django]'
	touch $@ $(STAMP_RUN)

# The benchmarks' extra (py-spy, for the profile targets) on top of the test set-up.
$(STAMP_BENCH): pyproject.toml $(STAMP_TEST)
	$(BIN)/python -m pip install -q -e '.[test,django,bench]'
	touch $@

demo: $(STAMP_RUN)
	$(BIN)/eventtracking demo --store $(STORE)

$(STAMP_CONSOLE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[console]'
	touch $@

# The console over the demo store (or STORE=...): http://127.0.0.1:8765/
console: $(STAMP_CONSOLE)
	$(BIN)/eventtracking serve --store $(STORE)

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests bench example
	$(BIN)/ruff format --check src tests bench example

typecheck: $(STAMP_TEST)
	$(BIN)/mypy

pytest: $(STAMP_TEST)
	$(BIN)/pytest -q

# The original event-tracking 4.0.2's own tests, downloaded at test time (never
# committed: licence), run against ours. UPSTREAM_ARGS passes pytest options.
test-upstream: $(STAMP_TEST)
	$(BIN)/python tests/upstream/run_upstream.py $(UPSTREAM_ARGS)

test: lint typecheck pytest test-upstream

# The peers of `make bench`, each in its own virtualenv under build/peers/ (the
# original event-tracking installs the same package name as ours). The floors
# are bench/peers/floors.py and run in our own virtualenv.
$(PEERS)/.built: bench/peers/requirements-et.txt bench/peers/requirements-structlog.txt
	$(PYTHON) -m venv $(PEERS)/et
	$(PEERS)/et/bin/python -m pip install -q -r bench/peers/requirements-et.txt
	$(PYTHON) -m venv $(PEERS)/structlog
	$(PEERS)/structlog/bin/python -m pip install -q -r bench/peers/requirements-structlog.txt
	touch $@

bench-peers: $(PEERS)/.built

bench: $(STAMP_TEST) $(PEERS)/.built
	$(BIN)/python bench/run.py --events $(N)
	$(MAKE) --no-print-directory bench-backends
	$(MAKE) --no-print-directory bench-delivery
	$(MAKE) --no-print-directory bench-floors
	$(MAKE) --no-print-directory bench-django

# PostgreSQL and Redis backends vs hand-written loops, and end to end (needs both servers).
bench-backends: $(STAMP_TEST)
	$(BIN)/python bench/backends.py --events $(N)

# The delivery worker: emit latency (backend healthy/down), buffered vs durable, memory.
bench-delivery: $(STAMP_TEST)
	$(BIN)/python bench/delivery.py --events $(N)

# Delivery to a local HTTP sink and `consume` (Redis -> PostgreSQL) against hand-written
# floors in the same run (the consumer part needs both servers; skipped when absent).
bench-floors: $(STAMP_TEST)
	$(BIN)/python bench/delivery_floors.py --events 50000
	$(BIN)/python bench/consume_floor.py --events $(N)

# Where the delivery worker's time goes: py-spy samples one HTTP run (gzip) per thread.
profile-delivery: $(STAMP_BENCH)
	$(BIN)/python bench/profile_delivery.py

# Instructions per event under valgrind: ratios that machine noise cannot move (not in `bench`).
bench-instructions: $(STAMP_TEST)
	$(BIN)/python bench/instructions.py

# The SQLite store at STORE_N events (5,000,000: a few minutes to build the first
# time, cached in bench/out/): query speed and bytes per event against JSON lines.
bench-store: $(STAMP_TEST)
	$(BIN)/python bench/store_bench.py --events $(STORE_N)

# Django: middleware overhead per request, browser endpoint throughput under wrk.
bench-django: $(STAMP_TEST)
	$(BIN)/python bench/django_bench.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis build dist src/*.egg-info
