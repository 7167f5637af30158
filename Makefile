# taskhub: `make run` starts web + worker + beat on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
VAR    := $(or $(TASKHUB_VAR_DIR),var)

# The test suite runs against PostgreSQL and Redis at their default local addresses.
TEST_ENV := DEBUG=false \
	SECRET_KEY=test-secret-key-for-the-suite-only-0123456789abcdefghijklmnopqrstuvwxyz \
	DATABASE_URL=$${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/taskhub} \
	CELERY_BROKER_URL=$${TEST_BROKER_URL:-redis://127.0.0.1:6379/14} \
	CELERY_RESULT_BACKEND=django-db \
	TASKS_ALLOWED_TEST_MODULES=jobs.tests.standard_tasks \
	TASKHUB_VAR_DIR=$(CURDIR)/var/test

.PHONY: install install-base run test test-faults lint format migrations-check clean bench

# Two stamps: `make run` needs only the runtime (requirements/base.txt); `make test`, `make lint`
# and `make bench` the test and tooling packages too (requirements/dev.txt includes base.txt).
$(BIN)/.installed-base: requirements/base.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/base.txt
	touch $@

$(BIN)/.installed: requirements/base.txt requirements/dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements/dev.txt
	touch $@ $(BIN)/.installed-base

# var/secret_key: generated once; settings use it when neither the environment nor .env sets SECRET_KEY.
install-base: $(BIN)/.installed-base $(VAR)/secret_key

install: $(BIN)/.installed $(VAR)/secret_key

$(VAR)/secret_key: | $(BIN)/.installed-base
	mkdir -p $(VAR)
	umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: install-base
	@set -e; \
	echo "taskhub: migrating the database and collecting static files ..."; \
	$(BIN)/python manage.py migrate --noinput -v0; \
	$(BIN)/python manage.py collectstatic --noinput -v0; \
	admin="$$($(BIN)/python manage.py ensure_admin --no-color)"; \
	TASKHUB_PORT=$(PORT) TASKHUB_BANNER="$$admin" PATH="$(CURDIR)/$(BIN):$$PATH" exec $(BIN)/python scripts/run.py

# `make test` runs the suite, then (unless PYTEST_ARGS picks tests) the fault suite.
test: install
	@$(TEST_ENV) $(BIN)/python scripts/check_services.py
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory test-faults; fi

# The fault suite (jobs/tests/faults/test_faults.py): real processes with the production recovery settings,
# on Redis and on RabbitMQ, FAULT_PROCESSES scenarios at a time (mostly waiting for a minute of
# staleness). Writes var/test/faults/report.md, the table of docs/RELIABILITY.md.
FAULT_PROCESSES ?= 4
test-faults: install
	@$(TEST_ENV) $(BIN)/python scripts/check_services.py
	rm -rf $(CURDIR)/var/test/faults
	$(TEST_ENV) $(BIN)/pytest jobs/tests/faults/test_faults.py -m faults -n $(FAULT_PROCESSES) --dist load $(FAULTS_ARGS)
	@$(TEST_ENV) $(BIN)/python scripts/fault_report.py $(CURDIR)/var/test/faults

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	DEBUG=true $(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/lint-imports

format:
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(TEST_ENV) $(BIN)/python bench/run_all.py

clean:
	rm -rf var/test .pytest_cache
