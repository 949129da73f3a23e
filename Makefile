# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench soak lint typecheck check migrate clean vendor

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: install, migrate, and start the hub on SQLite (./var/hub.db) with the embedded worker
run: $(STAMP)
	$(BIN)/hub migrate
	$(BIN)/hub serve --host 127.0.0.1 --port 8000

## make test: the whole suite (PostgreSQL and Redis tests skip with a reason when those are not running),
## on TEST_WORKERS processes (pytest-xdist; each has its own PostgreSQL database); TEST_WORKERS=0 runs it in one
TEST_WORKERS ?= 2
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## make bench: every benchmark, written to docs/BENCHMARKS.md, then the targets table at its top (bench/targets.py)
bench: $(STAMP)
	$(BIN)/python bench/ingest_forms.py
	$(BIN)/python bench/ingest_events.py
	$(BIN)/python bench/apply_cost.py
	$(BIN)/python bench/routing.py
	$(BIN)/python bench/send.py
	$(BIN)/python bench/timeline.py
	$(BIN)/python bench/reports.py
	$(BIN)/python bench/claims.py
	$(BIN)/python bench/import_leads.py
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/targets.py

## make soak: 15 minutes of mixed webhooks at 200/s against one `hub serve` (not in CI, not in `make bench`);
## SOAK_ARGS adds options, e.g. make soak SOAK_ARGS="--env HUB_INGEST_MODE=deferred --minutes 5"
soak: $(STAMP)
	$(BIN)/python bench/soak.py $(SOAK_ARGS); status=$$?; $(BIN)/python bench/targets.py && exit $$status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

migrate: $(STAMP)
	$(BIN)/hub migrate

## make vendor: re-copy the dashboard's front-end libraries (versions pinned in frontend/package-lock.json) into
## hub/static/vendor/; needs npm, and only when changing a version (the copies are committed, so `make run` does not)
vendor:
	sh frontend/vendor.sh

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
