# shop — the two commands a newcomer needs are `make run` and `make test`.
# Each sets itself up (virtual environment, pinned dependencies) on a machine with Python 3.11+, git and make.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
export FLASK_APP := shop

.DEFAULT_GOAL := help

.PHONY: help
help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# the venv is rebuilt whenever a requirements file changes
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "shop needs Python 3.11 or newer"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.installed  ## create .venv and install the pinned dependencies

.PHONY: run
run: venv  ## run the service with sample data on http://127.0.0.1:8000, the webhook worker and the order sweeper
	$(BIN)/python -m shop.devservices -- sh -c '\
	  $(BIN)/flask db upgrade && \
	  $(BIN)/flask seed-db --if-empty && \
	  { $(BIN)/flask events deliver & deliverer=$$!; \
	    $(BIN)/flask orders expire & sweeper=$$!; \
	    trap "kill $$deliverer $$sweeper 2>/dev/null" EXIT INT TERM; \
	    $(BIN)/flask run --host 127.0.0.1 --port $${PORT:-8000}; }'

.PHONY: test
test: venv  ## run the test suite (embedded PostgreSQL and Redis unless DATABASE_URL / REDIS_URL are set)
	$(BIN)/pytest $(PYTEST_ARGS)

.PHONY: test-unit
test-unit: venv  ## the use cases on an in-memory unit of work: no database, no Redis, a few seconds
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

.PHONY: lint
lint: venv  ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: format
format: venv  ## apply ruff's formatting and safe fixes
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

.PHONY: bench
bench: venv  ## benchmark the service under gunicorn (scripts/bench.py)
	$(BIN)/python -m shop.devservices -- $(BIN)/python scripts/bench.py $(BENCH_ARGS)

.PHONY: bench-seed
bench-seed: venv  ## time flask seed-db: the demo seed and 1,000,000 orders (scripts/bench_seed.py)
	$(BIN)/python -m shop.devservices -- $(BIN)/python scripts/bench_seed.py $(BENCH_SEED_ARGS)

.PHONY: bench-reports
bench-reports: venv  ## the revenue reports on 1,000,000 seeded orders, through the API (scripts/bench_reports.py)
	$(BIN)/python -m shop.devservices -- $(BIN)/python scripts/bench_reports.py $(BENCH_REPORTS_ARGS)

.PHONY: bench-capacity
bench-capacity: venv  ## what fails first: hot products, WAL fsync, connections (scripts/bench_capacity.py)
	$(BIN)/python -m shop.devservices -- $(BIN)/python scripts/bench_capacity.py $(BENCH_CAPACITY_ARGS)

.PHONY: chaos
chaos: venv  ## fault injection: two servers, clients, killed connections and workers, Redis and PostgreSQL faults
	$(BIN)/python scripts/chaos.py $(CHAOS_ARGS)

.PHONY: clean
clean:  ## remove the virtual environment and caches (keeps instance/ data)
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
