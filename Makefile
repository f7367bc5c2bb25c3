# The two commands of the README: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_WORKERS ?= 2
ROWS ?= 500000
EVENTS ?= 5000000
PARTICIPANTS ?= 100000
USERS ?= 32
DURATION ?= 60
EMPLOYEES ?= 5000

.PHONY: run test lint format install migrate seed worker clean-data bench-import bench-audit bench-events bench-api bench-dashboard gates-demo messages screenshots

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## make messages: gather every marked string into locale/zh_Hans (django + djangojs), then compile.
## Settings are read only (no database is opened), so a placeholder DATABASE_URL will do.
MESSAGE_FLAGS := -l zh_Hans --no-obsolete --no-location --ignore '.venv/*' --ignore '.data/*' --ignore 'tests/*' --ignore 'benchmarks/*'
messages: $(STAMP)
	DATABASE_URL=$${DATABASE_URL:-postgres://localhost/unused} $(BIN)/python manage.py makemessages $(MESSAGE_FLAGS)
	DATABASE_URL=$${DATABASE_URL:-postgres://localhost/unused} $(BIN)/python manage.py makemessages -d djangojs $(MESSAGE_FLAGS)
	DATABASE_URL=$${DATABASE_URL:-postgres://localhost/unused} $(BIN)/python manage.py compilemessages -l zh_Hans --ignore '.venv/*'

## make screenshots: the everyday pages per demo user, English and Chinese, 1366 and 375 px,
## into docs/screenshots/ (its own embedded database under .data/screenshots).
screenshots: $(STAMP)
	bash deploy/scripts/ensure_test_deps.sh
	@fc-list :lang=zh | grep -q . || { [ "$$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; } \
	  || { echo "The Chinese screenshots need a CJK font: apt-get install fonts-noto-cjk" >&2; exit 1; }
	$(BIN)/python deploy/scripts/screenshots.py

## make run: embedded PostgreSQL (unless DATABASE_URL), migrate, demo data, web + Celery worker/beat.
run: $(STAMP)
	$(BIN)/python deploy/scripts/run_dev.py

## make test: ruff, then the whole pytest suite (DATABASE_URL if set, else embedded PostgreSQL).
test: $(STAMP)
	bash deploy/scripts/ensure_test_deps.sh
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff format --check . && $(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate && $(BIN)/python manage.py createcachetable

seed: migrate
	$(BIN)/python manage.py seed_demo

clean-data:
	$(BIN)/python -c "from config import embedded; from pathlib import Path; embedded.stop_database(); embedded.stop_database(Path('.data/test/pg'))" || true
	rm -rf .data

## make bench-import ROWS=500000: the import pipeline over HTTP vs psql \copy and
## django-import-export; the main batch and a 10,000-row one meet an aged database (earlier
## batches committed and rolled back, analysed before the batch under test); prints JSON
## (BENCH_ARGS: e.g. --keep, --no-aged, --aged-batches 4, --database attendance_bench).
bench-import: $(STAMP)
	@$(BIN)/python -m benchmarks.import_bench --rows $(ROWS) $(BENCH_ARGS)

## make bench-audit EVENTS=5000000: the audit viewer over HTTP at EVENTS seeded events (first
## page, the 1,000th page by keyset, filtered pages, a 1,000,000-row CSV export with the web
## worker's RSS sampled); prints JSON (BENCH_ARGS: e.g. --keep, --export-rows 200000,
## --database attendance_audit_bench).
bench-audit: $(STAMP)
	@$(BIN)/python -m benchmarks.audit_bench --events $(EVENTS) $(BENCH_ARGS)

## make bench-events PARTICIPANTS=100000: one completed event with PARTICIPANTS registered
## participants still unknown: auto-absence (manage.py auto_absence run) and the event's
## participants page over HTTP (first page, filtered, last page; median of 5); prints JSON
## (BENCH_ARGS: e.g. --keep, --database attendance_events_bench).
bench-events: $(STAMP)
	@$(BIN)/python -m benchmarks.events_bench --participants $(PARTICIPANTS) $(BENCH_ARGS)

## make bench-api USERS=32 DURATION=60: locust (headless) against gunicorn (2 workers) on a
## seeded organisation (500 people, 3 months of days, pending corrections, 100,000 audit
## events): records, summary, punches, corrections asked and approved, the audit log; prints
## JSON with p50/p95/p99, rps, errors and 429s apart, overall and per endpoint (BENCH_ARGS:
## e.g. --keep, --wait 0.5,1.5, --rate-limit PUNCH=60/m, --database attendance_api_bench).
bench-api: $(STAMP)
	@$(BIN)/python -m benchmarks.api_bench --users $(USERS) --duration $(DURATION) $(BENCH_ARGS)

## make bench-dashboard EMPLOYEES=5000: GET /dashboard/ over HTTP as an admin (gunicorn, one
## worker) at EMPLOYEES seeded people with a month of days, today's punches, pending
## corrections, import batches and audit events; 30 timed requests after a warm-up; prints
## JSON with p50/p95/max and the page's query count (BENCH_ARGS: e.g. --keep, --requests 100).
bench-dashboard: $(STAMP)
	@$(BIN)/python -m benchmarks.dashboard_bench --employees $(EMPLOYEES) $(BENCH_ARGS)

## make gates-demo: a real GO and a real NO-GO decision packet. On its own database, gunicorn
## (2 workers) and a Celery worker in a production-like environment; the gates preflight,
## smoke, strict, perf (2,000 rows) and metrics, then `gates decide` (GO); the worker stopped,
## the preflight again and `gates decide` (NO-GO); prints both packets and a JSON line
## (BENCH_ARGS: e.g. --keep, --rows 5000, --database attendance_gates_demo).
gates-demo: $(STAMP)
	@$(BIN)/python -m benchmarks.gates_demo $(BENCH_ARGS)
