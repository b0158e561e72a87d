# The commands people type. Each one installs and starts what it needs.
SHELL := /bin/bash
ENV := scripts/env.sh
PY := .venv/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: setup run serve test lint format bench stop demo clean

setup:
	@$(ENV) system
	@$(ENV) venv
	@$(ENV) db
	@$(PY) manage.py migrate --noinput -v 0

run: setup
	@$(PY) manage.py demo_load --if-empty
	@$(PY) manage.py collectstatic --noinput -v 0
	@$(PY) manage.py demo_logins
	@echo "==> Serving on http://$(HOST):$(PORT)/  (Ctrl-C to stop; 'make stop' stops PostgreSQL)"
	@$(PY) -m uvicorn maraudes.asgi:application --host $(HOST) --port $(PORT) --lifespan off --ws-per-message-deflate false

test: setup
	@$(ENV) browser
	@$(ENV) redis
	@$(PY) -m pytest --create-db $(PYTEST_ARGS)

lint: setup
	@.venv/bin/ruff check .
	@.venv/bin/ruff format --check .
	@$(PY) manage.py makemigrations --check --dry-run

format:
	@.venv/bin/ruff format .
	@.venv/bin/ruff check --fix .

bench: setup
	@$(ENV) redis
	@$(PY) -m bench.all

demo: setup
	@$(PY) manage.py demo_load --force

stop:
	@$(ENV) stop

clean:
	@$(ENV) clean
