"""Settings from the environment, checked in fresh processes (settings load once per process)."""

import json
import secrets
import subprocess
import sys

import pytest
from django.conf import settings

MANAGE = str(settings.BASE_DIR / "manage.py")

PRODUCTION = {
    "DEBUG": "false",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",  # opt-in: they bind every subdomain
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "ALLOWED_HOSTS": "taskhub.example.com",
    "CACHE_URL": "redis://127.0.0.1:6379/3",
}


def manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run manage.py with only ``env`` set (plus PATH), its var/ folder in ``tmp_path``."""
    clean = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "TASKHUB_VAR_DIR": str(tmp_path / "var"),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env,
    }
    return subprocess.run(
        [sys.executable, MANAGE, *args],
        cwd=settings.BASE_DIR,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    "secret_key",
    [
        None,
        "",
        "change-me",
        "django-insecure-" + secrets.token_urlsafe(40),
    ],
    ids=["missing", "empty", "change-me", "django-insecure"],
)
def test_production_refuses_to_start_without_a_real_secret_key(tmp_path, secret_key):
    env = {"DEBUG": "false"}
    if secret_key is not None:
        env["SECRET_KEY"] = secret_key

    result = manage(tmp_path, "check", **env)

    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, result.stderr
    assert "SECRET_KEY" in message
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def deploy_check(tmp_path, **overrides: str) -> subprocess.CompletedProcess:
    """``check --deploy --fail-level WARNING`` with the production environment, plus ``overrides``."""
    env = {**PRODUCTION, "SECRET_KEY": secrets.token_urlsafe(50), **overrides}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'production.sqlite3'}"
    return manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **env)


def test_production_settings_pass_the_deployment_checklist(tmp_path):
    result = deploy_check(tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_deployment_checklist_fails_on_an_insecure_setting(tmp_path):
    """The check above can fail: the same environment with insecure cookies does not pass."""
    result = deploy_check(tmp_path, SESSION_COOKIE_SECURE="false")

    assert result.returncode != 0
    assert "security.W012" in result.stderr


def test_deployment_checklist_warns_of_per_process_throttle_counters(tmp_path):
    result = deploy_check(tmp_path, CACHE_URL="locmemcache://taskhub")
    assert result.returncode != 0
    assert "accounts.W001" in result.stderr and "CACHE_URL" in result.stderr


def test_several_web_processes_with_a_per_process_cache_refuse_to_start(tmp_path):
    env = {"SECRET_KEY": secrets.token_urlsafe(50), "CACHE_URL": "locmemcache://taskhub"}
    refused = manage(tmp_path, "check", WEB_CONCURRENCY="2", **env)
    assert refused.returncode != 0 and "accounts.E001" in refused.stderr
    assert manage(tmp_path, "check", WEB_CONCURRENCY="1", **env).returncode == 0
    shared = manage(tmp_path, "check", WEB_CONCURRENCY="2", **{**env, "CACHE_URL": "redis://127.0.0.1:6379/3"})
    assert shared.returncode == 0, shared.stderr


PRINT_SETTINGS = """
import json
from django.conf import settings
from django.db import connection
from taskhub.celery import app
with connection.cursor() as cursor:
    cursor.execute("PRAGMA journal_mode")
    journal_mode = cursor.fetchone()[0]
print(json.dumps({
    "database": settings.DATABASES["default"],
    "journal_mode": journal_mode,
    "broker_url": settings.CELERY_BROKER_URL,
    "celery_broker_url": app.conf.broker_url,
    "broker_options": settings.CELERY_BROKER_TRANSPORT_OPTIONS,
}, default=str))
"""


def test_embedded_default_with_nothing_set(tmp_path):
    result = manage(tmp_path, "shell", "--no-imports", "-c", PRINT_SETTINGS, DEBUG="true")

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    database = printed["database"]
    assert database["ENGINE"] == "django.db.backends.sqlite3"
    assert database["NAME"] == str(tmp_path / "var" / "taskhub.sqlite3")
    assert database["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert database["OPTIONS"]["timeout"] >= 5
    assert "journal_mode=WAL" in database["OPTIONS"]["init_command"]
    assert printed["journal_mode"] == "wal"  # the option really reaches the connection
    assert printed["broker_url"] == "filesystem://localhost//"
    assert printed["celery_broker_url"] == "filesystem://localhost//"
    queue = str(tmp_path / "var" / "broker" / "queue")
    assert printed["broker_options"]["data_folder_in"] == queue
    assert printed["broker_options"]["data_folder_out"] == queue
    assert printed["broker_options"]["polling_interval"] == 0.1  # BROKER_POLLING_INTERVAL (kombu's: 1 s)


def test_secret_key_is_read_from_the_key_file_when_the_environment_has_none(tmp_path):
    (tmp_path / "var").mkdir()
    key_file = tmp_path / "var" / "secret_key"
    key_file.write_text(secrets.token_urlsafe(50) + "\n")
    assert manage(tmp_path, "check", DEBUG="false").returncode == 0  # the default SECRET_KEY_FILE

    key_file.write_text("change-me\n")
    refused = manage(tmp_path, "check", DEBUG="false")
    assert refused.returncode != 0 and "SECRET_KEY" in refused.stderr

    other = tmp_path / "mounted-secret"
    other.write_text(secrets.token_urlsafe(50))
    assert manage(tmp_path, "check", DEBUG="false", SECRET_KEY_FILE=str(other)).returncode == 0


CHILD_SEES_THE_TEST_DATABASE = """
import json, os, subprocess, sys
from django.db import connection
from accounts.models import User
from taskhub.testing import child_database_url
name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
User.objects.create(username="made-by-the-test")
count = "from accounts.models import User; print(User.objects.filter(username='made-by-the-test').count())"
child = subprocess.run(
    [sys.executable, sys.argv[0], "shell", "-v0", "-c", count],
    env={**os.environ, "DATABASE_URL": child_database_url()}, capture_output=True, text=True,
)
connection.creation.destroy_test_db(name, verbosity=0)
print(json.dumps({"name": name, "child": child.stdout.strip(), "error": child.stderr[-2000:]}))
"""


def test_the_sqlite_test_database_is_a_file_under_var_that_child_processes_share(tmp_path):
    """A test run on the embedded default (pytest with no DATABASE_URL): its database is a file under
    var/, so a test's worker or server process (child_database_url) opens the same database, and no
    SQLite file appears in the working directory (memorydb_default, -shm and -wal were committed)."""
    work = tmp_path / "cwd"
    work.mkdir()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TASKHUB_VAR_DIR": str(tmp_path / "var"), "DEBUG": "true"}
    result = subprocess.run(
        [sys.executable, MANAGE, "shell", "-v0", "-c", CHILD_SEES_THE_TEST_DATABASE],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(path.name for path in work.iterdir()) == []
    assert printed["name"].startswith(str(tmp_path / "var")), printed
    assert printed["child"] == "1", printed


@pytest.mark.django_db
def test_database_connections_give_up_on_a_partition_instead_of_hanging():
    """A database host whose packets are dropped (a partition: no reset, no refusal) fails a connect
    after DATABASE_CONNECT_TIMEOUT and an unanswered write after DATABASE_TCP_USER_TIMEOUT, instead of
    the kernel's ~15 minutes of retransmissions (the many-hosts bed's scenarios 1 and 4); keepalives
    find a silent peer while a query waits. Read back from the live connection."""
    from django.db import connection

    connection.ensure_connection()
    params = connection.connection.info.get_parameters()
    assert params["connect_timeout"] == "5"
    assert params["tcp_user_timeout"] == "10000"
    assert (params["keepalives"], params["keepalives_idle"], params["keepalives_interval"]) == ("1", "30", "10")
    assert params["keepalives_count"] == "3"


def test_a_silent_redis_broker_fails_a_send_instead_of_hanging_it():
    """A host cut from Redis (packets dropped) waited for a command's reply for the kernel's ~15
    minutes: an API create hung in its send (the many-hosts bed's scenario 3). A socket timeout makes
    the send fail, the row stays unsent and the sweeper sends it; a new connection gives up as fast."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the suite's broker is not Redis")
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    assert options["socket_timeout"] == 5.0
    assert options["socket_connect_timeout"] == 5.0
    assert options["socket_keepalive"] is True


def test_a_worker_that_reconnects_to_rabbitmq_after_a_partition_is_not_locked_out():
    """Celery 5.7 declares a worker's remote-control queue (celery@<host>.celery.pidbox) exclusive to its
    connection. A worker host cut off from RabbitMQ reconnects before RabbitMQ has noticed its old
    connection is dead; the redeclare then failed with RESOURCE_LOCKED and the worker exited (the
    many-hosts bed's scenario 1 on RabbitMQ). Non-exclusive, expiring 10 s after its last consumer, as
    before Celery 5.5."""
    assert settings.CELERY_CONTROL_QUEUE_EXCLUSIVE is False
    from taskhub.celery import app

    assert app.conf.control_queue_exclusive is False
    assert app.conf.control_queue_expires == 10.0


def test_a_worker_that_reconnects_with_jobs_running_takes_its_full_prefetch_again():
    """Celery lowers a reconnected worker's prefetch by the jobs it ran at the loss and restores it only
    as jobs received after the reconnect are acknowledged: a worker cut off with 2 running jobs came
    back running 1 at a time until a new job ended (the many-hosts bed's scenario 2 on RabbitMQ, after
    scenario 1's cut)."""
    from taskhub.celery import app

    assert app.conf.worker_enable_prefetch_count_reduction is False


PREPARED_AFTER_SIX = """
from django.db import connection, transaction
from jobs.services import _sql
for _ in range(6):
    with transaction.atomic():
        _sql.creator_lock()  # one of the job path's server-bound statements
with connection.cursor() as cursor:
    cursor.execute("SELECT statement FROM pg_prepared_statements WHERE NOT from_sql")
    print(repr((connection.connection.prepare_threshold, [row[0] for row in cursor.fetchall()])))
"""


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("value", "threshold", "prepared"),
    [
        (None, 5, ["SELECT pg_advisory_xact_lock($1)"]),
        ("true", 5, ["SELECT pg_advisory_xact_lock($1)"]),
        ("false", None, []),
        ("off", None, []),
    ],
    ids=["default", "true", "false", "off"],
)
def test_prepared_statements_on_postgresql(tmp_path, value, threshold, prepared):
    """DATABASE_PREPARED_STATEMENTS (default true): the job path's statements are prepared at their
    5th run on a connection; false (PgBouncer before 1.21 in transaction mode) names none."""
    from django.db import connection

    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    env = {"DATABASE_URL": url, "DEBUG": "true"} | ({} if value is None else {"DATABASE_PREPARED_STATEMENTS": value})
    result = manage(tmp_path, "shell", "--no-imports", "-c", PREPARED_AFTER_SIX, **env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == repr((threshold, prepared))


def test_a_bad_prepared_statements_value_refuses_to_start(tmp_path):
    result = manage(
        tmp_path,
        "check",
        DEBUG="true",
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/x",
        DATABASE_PREPARED_STATEMENTS="maybe",
    )

    assert result.returncode != 0
    assert "DATABASE_PREPARED_STATEMENTS must be true or false, got 'maybe'." in result.stderr
