# S3 Sync Service: native targets (a .venv, no Docker needed).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install test demo lint mock-api bench initial-sync incremental-sync reconcile status clean-venv

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP) ## create .venv with the service and its test tools

test: $(STAMP) ## run the test suite (real S3 servers and the mock API on free ports)
	$(PY) -m pytest -q

demo: $(STAMP) ## initial sync of test-data/ against embedded S3 and mock API servers
	$(PY) scripts/demo.py

lint: $(STAMP) ## ruff and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

mock-api: $(STAMP) ## run the mock file-manager API on MOCK_API_PORT (8001)
	$(PY) -m mock_api

bench: $(STAMP) ## initial-sync benchmark against rclone serve s3, next to rclone copy
	$(PY) scripts/bench.py

initial-sync: $(STAMP) ## run an initial sync with the configuration in the environment / .env
	$(PY) -m sync_service.main initial-sync

incremental-sync: $(STAMP) ## replay events and apply the difference, with the environment / .env
	$(PY) -m sync_service.main incremental-sync

reconcile: $(STAMP) ## repair drift between the bucket and the records
	$(PY) -m sync_service.main reconcile

status: $(STAMP) ## show the status with the configuration in the environment / .env
	$(PY) -m sync_service.main status

clean-venv: ## remove .venv
	rm -rf $(VENV)
