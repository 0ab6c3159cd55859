# The two commands of the README: `make run` and `make test`. Both set up a fresh machine themselves.
SHELL := /bin/bash
PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV := .venv
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
# Two workers (one per core); a module's tests stay on one worker, so its platform starts once.
PYTEST_XDIST ?= -n 2 --dist loadscope
# A test that failed on the broker being unreachable runs again after 90 s, at most twice: a safety
# net. The stall seen before was RabbitMQ's file handle cache running out (ensure-services.sh raises it).
BROKER_STALL := (rabbitmqctl .* timed out|5672 unreachable|is down|did not become healthy|not ready within|Connection.OpenOk)
PYTEST_RERUN ?= --reruns 2 --reruns-delay 90 --only-rerun '$(BROKER_STALL)'
BENCH_ARGS ?=

.PHONY: install run test test-clock bench lint typecheck test-services clean

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# Bytecode is compiled when installing (uv) and for the project's own sources on every run: where
# PYTHONDONTWRITEBYTECODE is set (as on this project's machines) Python never writes it itself, and every service
# process the tests start compiled its imports again (2.5 s of CPU each for notifications, 1.2 s with .pyc).
$(STAMP): uv.lock pyproject.toml shared/pyproject.toml testkit/pyproject.toml cli/pyproject.toml $(wildcard services/*/pyproject.toml) | $(UV)
	$(UV) sync --all-packages --frozen --compile-bytecode --python $(PYTHON)
	touch $@

install: $(STAMP)
	@$(VENV)/bin/python -m compileall -q -j 0 shared testkit cli services tests bench > /dev/null

## Run every service and the portal (SQLite in var/, demo city of Surabaya seeded on first start).
run: install
	@bash deploy/scripts/ensure-services.sh broker
	KKMP_DEMO=$${KKMP_DEMO:-1} $(VENV)/bin/kkmp run

## Install, start what the tests need, and run the whole suite (unit, integration, end-to-end, browser).
test: install test-services
	$(VENV)/bin/python -m pytest $(PYTEST_XDIST) $(PYTEST_RERUN) --durations=15 $(PYTEST_ARGS)

## The date-sensitive tests (marker `clock`) pinned at the month, year and leap-day edges, in WIB and UTC.
test-clock: install test-services
	$(VENV)/bin/python tests/clock_edges.py $(PYTEST_XDIST) $(PYTEST_RERUN) $(PYTEST_ARGS)

test-services:
	@bash deploy/scripts/ensure-services.sh broker postgres chromium pgbouncer

## Benchmarks: prints a table and writes bench/results.json (BENCH_ARGS="--only cluster" or "--only single": one part).
bench: install
	@bash deploy/scripts/ensure-services.sh broker postgres
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

## Style, format and types (mypy over every package of the workspace).
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

typecheck: install
	$(VENV)/bin/mypy

clean:
	rm -rf var test-artifacts bench/results.json
