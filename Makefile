# S3 Sync Service. Native targets need only Python 3.11 (or later) and make, on Linux or macOS
# (native Windows cannot run the service: WSL2 or Docker); Docker targets need a Docker engine
# with Compose. Sync targets run inside the Compose stack when it runs, natively otherwise.
PYTHON  ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
COMPOSE ?= docker compose

.DEFAULT_GOAL := help
.PHONY: help install lock docs test test-postgres test-killpoints test-clouds demo lint mock-api bench bench-clouds bench-freshness bench-workers \
        initial-sync incremental-sync reconcile daemon status test-workflow \
        setup up down clean logs logs-sync shell clean-venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

# -- native ------------------------------------------------------------------------------
# The lock files pin every package, transitive ones included, with the hashes of its files: an
# install takes exactly what was locked and checks what it downloads.
# The code needs Python 3.11 (tomllib among others): say so before building a
# .venv that would fail later in less clear ways.
LOCKS := requirements.lock requirements-mock.lock requirements-dev.lock
$(STAMP): $(LOCKS) package.json
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "make: the service needs Python 3.11 or later; '$(PYTHON)' is $$($(PYTHON) --version 2>&1 || echo missing)." \
	       "Install one and run: make PYTHON=python3.11 install"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	@if command -v npm >/dev/null 2>&1; then npm ci --silent --no-audit --no-fund; \
	  else echo "npm not found: the Compose schema check will be skipped"; fi
	touch $(STAMP)

install: $(STAMP) ## create .venv with the service and its test tools (and node_modules for checks)

# After a change to requirements*.txt: the service's image installs requirements.lock, the mock's
# requirements-mock.lock, make install requirements-dev.lock. --universal: one lock for every
# platform (markers where they differ), the hashes of every file of each pinned release.
# The development tools' lock starts at 3.11.5, the oldest Python pymdown-extensions (docs) supports.
UV_COMPILE = $(VENV)/bin/uv pip compile --quiet --generate-hashes --universal --custom-compile-command "make lock"
lock: ## write the hash-locked requirements (requirements*.lock) from requirements*.txt
	@test -x $(VENV)/bin/uv || { echo "uv is not in $(VENV): make install (requirements-dev.txt pins it)"; exit 1; }
	$(UV_COMPILE) --python-version 3.11 requirements.txt -o requirements.lock
	$(UV_COMPILE) --python-version 3.11 requirements-mock.txt -o requirements-mock.lock
	$(UV_COMPILE) --python-version 3.11.5 requirements-dev.txt -o requirements-dev.lock

# Tests run in TEST_JOBS processes (pytest-xdist): most of a test's time is spent waiting for
# the servers and commands it starts, so two at a time use two cores.
TEST_JOBS ?= 2
test: $(STAMP) ## run the test suite (real S3 servers and the mock API on free ports)
	$(PY) -m pytest -q -n $(TEST_JOBS) -m "not killpoints and not outage and not scale and not clouds"

test-clouds: $(STAMP) ## the storage contract against S3, fake-gcs-server and Azurite (npm) emulators
	REQUIRE_SERVICES=$${REQUIRE_SERVICES:-1} $(PY) -m pytest -q -m clouds

# The sync-behaviour tests again (the kill -9 group included), the service's state in
# PostgreSQL: a fresh database per test on the server at TEST_DATABASE_URL.
TEST_DATABASE_URL ?= postgresql://postgres@127.0.0.1:5432/postgres
POSTGRES_TESTS := tests/test_database_manager.py tests/test_housekeeping.py \
	tests/test_event_processor.py tests/test_initial_sync.py tests/test_incremental_sync.py \
	tests/test_reconcile_duty.py tests/test_renames.py tests/test_executor.py tests/test_daemon.py \
	tests/test_faults.py tests/test_hostile_events.py tests/test_secrets.py tests/test_status_page.py \
	tests/test_workflow_and_logs.py tests/test_killpoints.py tests/test_database_outage.py \
	tests/test_event_daemon.py tests/test_filtered_sync.py
test-postgres: $(STAMP) ## the sync-behaviour tests again, state in PostgreSQL (TEST_DATABASE_URL), and outages
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -q -n $(TEST_JOBS) $(POSTGRES_TESTS)
	TEST_DATABASE_URL=$(TEST_DATABASE_URL) $(PY) -m pytest -q -m scale

test-killpoints: $(STAMP) ## kill -9 at 20 seeded moments of a sync (about a minute)
	$(PY) -m pytest -q -m killpoints

SOURCE ?= s3
demo: $(STAMP) ## initial sync of test-data/ against embedded servers (SOURCE=s3|gcs|azure: moto, fake-gcs-server, Azurite)
	$(PY) scripts/demo.py --source $(SOURCE)

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# The settings table of docs/configuration.md and .env.example are written from the code first,
# so the site cannot describe settings the code does not have.
docs: $(STAMP) ## build the documentation site into site/ (MkDocs, --strict: a broken link fails)
	$(PY) scripts/gen_config_docs.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet
	@echo "site/index.html (or: $(VENV)/bin/mkdocs serve)"

mock-api: $(STAMP) ## run the mock file-manager API on MOCK_API_PORT (8001)
	$(PY) -m mock_api

bench: $(STAMP) ## initial-sync and incremental benchmarks against rclone serve s3
	$(PY) scripts/bench.py

bench-clouds: $(STAMP) ## initial sync from fake-gcs-server and Azurite against rclone copy from the same emulator
	$(PY) scripts/bench_clouds.py

bench-freshness: $(STAMP) ## event to file manager with the daemon as shipped: 100 objects at 20/s (NATS, spool), then 500 events/s for 60 s (~3 min)
	$(PY) scripts/bench_freshness.py

bench-workers: $(STAMP) ## 1, 2, 4, 8, 16 workers on PostgreSQL vs SQLite, API at 200 ms a call (~11 min)
	$(PY) scripts/bench_workers.py

# -- sync commands: in the Compose stack when it runs, natively otherwise ----------------------
initial-sync: ## run an initial sync
	./sync_cli.sh initial-sync

incremental-sync: ## replay events and apply the difference
	./sync_cli.sh incremental-sync

reconcile: ## repair drift between the bucket and the records
	./sync_cli.sh reconcile

daemon: ## run the daemon in the foreground (the stack runs one already: follow its log)
	./sync_cli.sh daemon

status: ## show the status
	./sync_cli.sh status

test-workflow: ## the end-to-end workflow check (embedded servers when nothing is configured)
	./sync_cli.sh test

# -- Docker Compose ------------------------------------------------------------------------------
# $(call need-docker,native equivalent): stop with one line when no Docker engine answers, or
# when it has no Compose v2 plugin (docker info passes without one; every target then fails).
need-docker = @docker info >/dev/null 2>&1 || { echo "no Docker engine here; natively: $(1)"; exit 1; }; \
	$(COMPOSE) version >/dev/null 2>&1 || { echo "'$(COMPOSE) version' fails: install Docker Compose v2; natively: $(1)"; exit 1; }

setup: ## build the images and start the stack
	$(call need-docker,make install && make demo)
	$(COMPOSE) up -d --build

up: ## start the stack
	$(call need-docker,make mock-api (and point CUSTOMER_S3_* at your S3))
	$(COMPOSE) up -d

down: ## stop the stack
	$(call need-docker,nothing to stop (native commands run in the foreground))
	$(COMPOSE) down

clean: ## stop the stack and delete its volumes
	$(call need-docker,rm -rf data logs)
	$(COMPOSE) down -v --remove-orphans

logs: ## follow the logs of every service
	$(call need-docker,tail -f logs/sync.log)
	$(COMPOSE) logs -f

logs-sync: ## follow the sync service's logs
	$(call need-docker,tail -f logs/sync.log)
	$(COMPOSE) logs -f sync-service

shell: ## open a shell in the sync-service container
	$(call need-docker,. .venv/bin/activate)
	$(COMPOSE) exec sync-service bash

clean-venv: ## remove .venv
	rm -rf $(VENV)

# -- container smoke test ------------------------------------------------------------------------
.PHONY: container-test
container-test: $(STAMP) ## build both images with Podman and run them (help, health, volume, initial sync)
	CONTAINER_TEST=1 $(PY) -m pytest -q -p no:cacheprovider tests/container
