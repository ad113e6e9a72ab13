# FinCoach: `make serve` and `make test` bootstrap .venv on a fresh machine (Python 3.11+).
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
E2E_STAMP := $(VENV)/.e2e-installed
PYTEST_ARGS ?=
FUZZ_EXAMPLES ?= 500

.DEFAULT_GOAL := help

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (none found on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(DEV_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@ $(RUNTIME_STAMP)

$(E2E_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev,e2e]'
	@touch $@ $(DEV_STAMP) $(RUNTIME_STAMP)

install: $(RUNTIME_STAMP) ## Create .venv and install the app

serve: $(RUNTIME_STAMP) ## Migrate, load demo data if empty, serve the API on :8000
	$(BIN)/fincoach serve

test: $(DEV_STAMP) ## Install dev dependencies and run the whole test suite
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/pytest $(PYTEST_ARGS)

# Each run shifts the clock of pytest and everything it starts (Ray included) with libfaketime:
# the simulator and the app anchor their data to "now", so a test must hold on every weekday,
# and across midnight and the Sunday-Monday week boundary.
# A start time "@YYYY-MM-DD_HH:MM:SS" becomes an offset from now: every process (Ray's workers
# start later) then keeps the same clock, where an absolute start would restart it in each.
CLOCKS ?= +0d +1d +2d +3d +4d +5d +6d
test-clock: $(DEV_STAMP) ## The whole suite at each of CLOCKS (offsets such as +2d, or @YYYY-MM-DD_HH:MM:SS)
	@command -v faketime >/dev/null || { echo "needs faketime (Debian: apt-get install faketime)"; exit 1; }
	@set -e; for c in $(CLOCKS); do \
	  case $$c in @*) t=$${c#@}; c="+$$(( $$(date -u -d "$${t//_/ }" +%s) - $$(date -u +%s) ))s";; esac; \
	  echo "== clock $$c: starts $$(faketime -f "$$c" date -u '+%a %F %T UTC')"; \
	  faketime -f "$$c" $(BIN)/pytest -q -p no:cacheprovider $(PYTEST_ARGS); done

e2e: $(E2E_STAMP) ## The original web client in headless Chromium against `fincoach serve`
	@command -v npm >/dev/null || { echo "needs Node.js and npm"; exit 1; }
	@test -x "$${FINCOACH_E2E_CHROMIUM:-/usr/bin/chromium}" || \
	  { echo "needs Chromium (Debian: apt-get install chromium)"; exit 1; }
	$(BIN)/pytest tests/e2e -m e2e $(PYTEST_ARGS)

fuzz: $(DEV_STAMP) ## Long API fuzzing: FUZZ_EXAMPLES (500) per operation, boundary cases, call chains
	FINCOACH_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FINCOACH_FUZZ_COVERAGE=1 FINCOACH_FUZZ_STATEFUL=1 \
		$(BIN)/pytest tests/api/test_fuzz.py --timeout=3600 $(PYTEST_ARGS)

BENCH_ARGS ?=
bench-request-path: $(DEV_STAMP) ## Request path, Serve vs the uvicorn peer under wrk, both databases (BENCH_ARGS=--quick ...)
	$(BIN)/python bench/request_path.py $(BENCH_ARGS)

bench-autoscaling: $(DEV_STAMP) ## A model deployment driven past its autoscaling target and back (BENCH_ARGS)
	$(BIN)/python bench/autoscaling.py $(BENCH_ARGS)

attack: $(DEV_STAMP) ## Replay issue 14's attacks against a running server (ATTACK_URL, OPS_TOKEN)
	$(BIN)/python bench/attack.py --url $(or $(ATTACK_URL),http://127.0.0.1:8000) \
		--ops-token "$(OPS_TOKEN)"

lint: $(DEV_STAMP) ## ruff (lint + format check), the layer contract and mypy
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: $(DEV_STAMP) ## Apply ruff formatting and fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean: ## Remove the venv, caches and the embedded database
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache fincoach.db fincoach.db-* e2e-screenshots

.PHONY: help install serve test test-clock e2e fuzz bench-request-path bench-autoscaling attack lint format clean
