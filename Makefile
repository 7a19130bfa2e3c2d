# Every target installs what it needs first: `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
# uv from the PATH, else the one pip installs (run as a module, so its install folder need not be on the PATH).
UV ?= $(shell command -v uv 2>/dev/null || echo python3 -m uv)
PYTEST_ARGS ?=
# pytest-xdist processes for `make test` (0 runs the tests in one process). Each has its own database and, when
# no MIRANTE_*_URL is set, its own embedded servers; a test file runs whole in one of them.
TEST_WORKERS ?= 2
# Bounds of `make fuzz`: examples per operation, seconds per service, services (comma-separated; empty = all).
FUZZ_EXAMPLES ?= 50
FUZZ_SECONDS ?= 120
FUZZ_SERVICES ?=

.DEFAULT_GOAL := help
.PHONY: help uv install browsers run test fuzz lint typecheck format migrate bench clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

uv: ## install uv when it is missing
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --user --quiet uv || python3 -m pip install --quiet uv

# Bytecode is compiled once here: where PYTHONDONTWRITEBYTECODE is set (containers, CI images), Python would
# otherwise compile every module it imports again in each process (each test run, command, server).
install: uv ## create .venv with every package of the workspace, compiled to bytecode
	@$(UV) sync --frozen --all-packages --compile-bytecode
	@.venv/bin/python -m compileall -q -j 0 libs services scripts tests

browsers: ## Debian's chromium for the page tests (needs root or sudo; or MIRANTE_CHROMIUM=/path/to/chromium)
	@scripts/install-chromium.sh

run: install ## start Postgres, Redis, MQTT (embedded unless MIRANTE_*_URL are set), migrate, run all five services
	@$(UV) run --frozen mirante up

test: install browsers ## run the whole test suite against real servers (installs chromium for the page tests)
	@$(UV) run --frozen pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

fuzz: install ## schemathesis against every service's OpenAPI (FUZZ_EXAMPLES, FUZZ_SECONDS, FUZZ_SERVICES)
	@$(UV) run --frozen python scripts/fuzz/run.py --examples $(FUZZ_EXAMPLES) --seconds $(FUZZ_SECONDS) \
		--services "$(FUZZ_SERVICES)"

lint: install ## ruff: lint and formatting
	@$(UV) run --frozen ruff check .
	@$(UV) run --frozen ruff format --check .

format: install ## apply ruff's formatting and safe fixes
	@$(UV) run --frozen ruff check --fix .
	@$(UV) run --frozen ruff format .

typecheck: install ## mypy --strict over the libraries, services, scripts/bench and scripts/fuzz
	@$(UV) run --frozen mypy libs/mirante/src libs/recording-client/src $(wildcard services/*/src) scripts/bench scripts/fuzz

migrate: install ## apply every Alembic history
	@$(UV) run --frozen mirante migrate

bench: install ## run the benchmarks and print their figures
	@$(UV) run --frozen python scripts/bench/run.py

clean: ## remove the embedded servers' data and caches
	rm -rf .mirante .mypy_cache .ruff_cache
