# WHOOP → Kafka → read models. `make help` lists the targets.
# Quick start on a fresh machine: `make run` (the whole pipeline on local defaults), `make test`.

SHELL := /bin/bash
.DEFAULT_GOAL := help
PY := .venv/bin/python
UV := run/tools/bin/uv
UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv
PYTEST_ARGS ?=
CODE := schemas infra ingest processors projections simulator deploy wear tests bench
# the local pipeline, the tests and the benchmarks run on the public development secrets, which
# every process refuses unless PIPELINE_ENV=dev (infra/pipeline_env.py); a caller's value wins
run test test-unit test-integration test-e2e bench: export PIPELINE_ENV ?= dev

.PHONY: help install system-deps up down status run test test-unit test-integration test-e2e lint fmt typecheck schemas schemas-check docs-check bench clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[36m%-17s\033[0m %s\n", $$1, $$2}'

system-deps: ## install Java 17 and Maven from Debian when missing (PostgreSQL is installed by `make up`)
	@command -v java >/dev/null && command -v mvn >/dev/null || { \
	  [ "$$(id -u)" = 0 ] || { echo "need java and mvn: sudo apt-get install -y openjdk-17-jre-headless maven" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q openjdk-17-jre-headless maven; }

$(UV):
	python3 -m venv run/tools
	run/tools/bin/pip install -q "uv==$(UV_VERSION)"

.venv/.synced: $(UV) pyproject.toml uv.lock
	$(UV) sync --locked --extra dev --python python3.11 -q
	@touch $@

install: system-deps .venv/.synced ## create .venv with the locked dependencies

up: install ## start the local Kafka broker and PostgreSQL, create topics, apply migrations
	$(PY) -m deploy up

down: ## stop the local Kafka (single and cluster) and PostgreSQL
	@[ -x $(PY) ] && $(PY) -m deploy down || true

status: install ## show what of the local infrastructure runs
	$(PY) -m deploy status

run: install ## run the whole pipeline on local defaults and show data flowing (Ctrl-C stops)
	$(PY) -m deploy run

lint: install ## ruff (lint + format check) and mypy --strict
	.venv/bin/ruff check $(CODE)
	.venv/bin/ruff format --check $(CODE)
	.venv/bin/mypy

fmt: install ## format the code
	.venv/bin/ruff format $(CODE)
	.venv/bin/ruff check --fix $(CODE)

typecheck: install ## mypy --strict
	.venv/bin/mypy

schemas: install ## regenerate the JSON Schema files of our events (schemas/json/)
	$(PY) -m deploy schemas write

schemas-check: install ## fail when schemas/json/ is out of date with the models
	$(PY) -m deploy schemas check

test-unit: install ## unit tests only (no services)
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

test-integration: up ## integration tests against the real Kafka and PostgreSQL
	$(PY) -m pytest -m integration $(PYTEST_ARGS)

test-e2e: up ## end-to-end tests (real processes)
	$(PY) -m pytest -m e2e $(PYTEST_ARGS)

docs-check: install ## fail when the README configuration table or deploy/env.example drifts from the code
	$(PY) -m deploy config check

test: up lint schemas-check docs-check ## everything: set-up, lint, schema and docs drift, all test tiers
	$(PY) -m pytest $(PYTEST_ARGS)

bench: up ## benchmarks; figures go to BENCHMARKS.md
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -q wrk; }
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean: down ## stop everything and delete the run folder (Kafka and PostgreSQL data, jars, venv tools)
	rm -rf run .venv
