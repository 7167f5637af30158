# taskhub: `make run` starts web + worker + beat on the embedded default; `make test` runs the suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 8000
VAR    := $(or $(TASKHUB_VAR_DIR),var)

# The test suite runs against PostgreSQL and Redis at their default local addresses.
# TEST_DATABASE_URL / TEST_BROKER_URL point them elsewhere; without them the default leg uses the
# database taskhub (tests: test_taskhub) and Redis db 14, the Django 6 leg taskhub_django6 and db 13.
TEST_DB_DEFAULT    = postgres://postgres@127.0.0.1:5432/taskhub
TEST_REDIS_DEFAULT = redis://127.0.0.1:6379/14
TEST_VAR_DIR       = $(CURDIR)/var/test
TEST_ENV = DEBUG=false \
	SECRET_KEY=test-secret-key-for-the-suite-only-0123456789abcdefghijklmnopqrstuvwxyz \
	DATABASE_URL=$${TEST_DATABASE_URL:-$(TEST_DB_DEFAULT)} \
	CELERY_BROKER_URL=$${TEST_BROKER_URL:-$(TEST_REDIS_DEFAULT)} \
	CELERY_RESULT_BACKEND=django-db \
	TASKS_ALLOWED_TEST_MODULES=jobs.tests.standard_tasks \
	TASKHUB_VAR_DIR=$(TEST_VAR_DIR)

# The Django 6 leg (Python 3.12 + Django 6.0, requirements/django60.txt) in a venv of its own:
# `make install-django6`, `make test-django6`. PYTHON_DJANGO6: a Python 3.12 (python3.12 on the PATH,
# else pyenv's newest 3.12).
VENV6  := .venv-django6
BIN6   := $(VENV6)/bin
PYTHON_DJANGO6 ?= $(shell for p in python3.12 $$(ls -d $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.12*/bin/python3.12 2>/dev/null | sort -V | tail -n 1); do \
	"$$p" -c 'import sys; assert sys.version_info[:2] == (3, 12)' >/dev/null 2>&1 && { echo "$$p"; break; }; done)

.PHONY: install install-base install-django6 run test test-suite test-django6 test-faults test-hosts test-legs lint format migrations-check clean bench

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

$(BIN6)/.installed: requirements/django60.txt
	@test -n "$(PYTHON_DJANGO6)" || { echo "install-django6: no Python 3.12 found (set PYTHON_DJANGO6)"; exit 1; }
	test -x $(BIN6)/python || $(PYTHON_DJANGO6) -m venv $(VENV6)
	$(BIN6)/pip install --quiet --upgrade pip
	$(BIN6)/pip install --quiet -r requirements/django60.txt
	touch $@

install-django6: $(BIN6)/.installed $(VAR)/secret_key

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

# `make test` runs the suite, then (unless PYTEST_ARGS picks tests) the fault suite; `make test-suite`
# the suite only.
test: test-suite
	@if [ -z "$(PYTEST_ARGS)" ]; then $(MAKE) --no-print-directory test-faults; fi

test-suite: install
	@$(TEST_ENV) $(BIN)/python scripts/check_services.py
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# The suite on the Django 6 leg (no fault suite: that runs on the default leg), with its own test
# database, Redis database and var/test-django6.
test-django6: TEST_DB_DEFAULT = postgres://postgres@127.0.0.1:5432/taskhub_django6
test-django6: TEST_REDIS_DEFAULT = redis://127.0.0.1:6379/13
test-django6: TEST_VAR_DIR = $(CURDIR)/var/test-django6
test-django6: install-django6
	@$(TEST_ENV) $(BIN6)/python scripts/check_services.py
	$(TEST_ENV) $(BIN6)/pytest $(PYTEST_ARGS)

# Both legs as CI runs them (scripts/test_legs.sh): the suite on Django 5.2, the suite on Django 6.0,
# the fault suite (Django 5.2) and the many-hosts bed side by side, each on its own test database and
# Redis db (faults: taskhub_faults, db 12, TESTF_*; hosts: taskhub_hosts, db 11, TESTH_*); ends with
# every run's counts.
test-legs: install install-django6
	bash scripts/test_legs.sh

# The fault suite (jobs/tests/faults/: test_workflow_kills.py first, the longest; test_faults.py; test_key_faults.py):
# real processes with the production recovery settings, on Redis and on RabbitMQ, FAULT_PROCESSES scenarios at
# a time (mostly waiting for a minute of staleness). Writes var/test/faults/report.md, the table of docs/RELIABILITY.md.
FAULT_PROCESSES ?= 4
test-faults: install
	@$(TEST_ENV) $(BIN)/python scripts/check_services.py
	rm -rf $(CURDIR)/var/test/faults
	$(TEST_ENV) $(BIN)/pytest jobs/tests/faults/test_workflow_kills.py jobs/tests/faults/test_faults.py jobs/tests/faults/test_key_faults.py -m faults -n $(FAULT_PROCESSES) --dist load $(FAULTS_ARGS)
	@$(TEST_ENV) $(BIN)/python scripts/fault_report.py $(CURDIR)/var/test/faults

# The many-hosts bed (jobs/tests/hosts/, taskhub/testing/hosts/): web, beats and workers on hosts that are
# network namespaces (root needed; skipped otherwise), with partitions and pauses, on private servers (the
# shared ones are not used). Writes var/test/hosts/report.md, the table of docs/RELIABILITY.md. Not in
# `make test`; CI runs it beside the suites (`make test-legs`). HOSTS_PROCESSES modules side by side (pytest-xdist, a module per process: each
# module builds its own beds, named `thbed-<pid>-…`, with their own namespaces, servers and vhost).
HOSTS_PROCESSES ?= 2
test-hosts: install
	rm -rf $(CURDIR)/var/test/hosts
	@status=0; $(TEST_ENV) $(BIN)/pytest jobs/tests/hosts -m hosts -n $(HOSTS_PROCESSES) --dist loadfile $(HOSTS_ARGS) \
		|| status=$$?; \
	$(TEST_ENV) $(BIN)/python scripts/hosts_report.py $(CURDIR)/var/test/hosts; exit $$status

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
