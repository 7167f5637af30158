"""schemathesis against the live ASGI server: every operation of /api/schema/, as a signed-in user.

The server is the Procfile's web process (uvicorn on ``taskhub.asgi``) on a free port, on the test
database and the test broker. The user signs up and logs in through the API (a real JWT), and is made
staff so that the staff-only operations (``/users/``) run their code too. Before the run there are jobs
in every status (one cancelled by nobody, one by a user, one of another user, events by a user and by
the system) and schedules of both kinds; the operations that take an ``{id}`` use those real ids most of
the time (schemathesis dictionaries), generated ones otherwise, so a run is not 404s only.

Checks, on every response: no 5xx, the status code documented, the content type documented, the body
valid against the documented schema, documented headers, and schema-invalid input refused.

Deterministic: derandomized generation with a fixed seed, and a bounded number of examples per
operation (``SCHEMATHESIS_MAX_EXAMPLES``, 30: about two minutes; more for a deeper run). Not in the
run: the live streams (``text/event-stream``), which stay open for as long as their job runs; they
are tested on the same server by jobs/tests/streams/test_stream*.py.

Throttle rates are raised on this server only: with the defaults (60 anonymous requests a minute, 10
logins) nearly every sign-up and token request of the run would be a 429 and their code would never
run. The 429s themselves, with the default rates, are tested in accounts/tests/test_register.py and
test_login.py, and test_openapi.py checks that every throttled operation documents them.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import User
from accounts.tests.factories import UserFactory
from jobs.models import JobEvent
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import make
from taskhub.testing import AsgiServer, child_database_url

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "30"))
RUN_TIMEOUT = 300 + 10 * MAX_EXAMPLES  # seconds; 30 examples take about 120 on 2 cores

pytestmark = [pytest.mark.timeout(RUN_TIMEOUT + 120)]
SEED = 20240901
UNTHROTTLED = "1000000/min"
# A real id of each kind most of the time; otherwise a generated one (a 404, or a 400 for a bad one).
REAL_ID_PROBABILITY = 0.8


def _seed_jobs(user: User, other: User) -> list[str]:
    """Jobs in every status the API shows, with the fields that may be null set and unset."""
    server_path = str(settings.BASE_DIR / "jobs" / "tasks" / "common_tasks.py")
    jobs = [
        make("pending", owner=user),
        make("running", owner=user),
        make("succeeded", owner=user),
        make("failed", owner=user, traceback=f'Traceback:\n  File "{server_path}", line 1\nRuntimeError: boom\n'),
        make("revoked", owner=user),  # cancelled by nobody (the system): cancelled_by is null
        make("revoked", owner=user, cancelled_by=user),
        make("expired", owner=user),  # not started by its expires_at
        make("failed", owner=other),
    ]
    for job in jobs:
        JobEvent.objects.create(job=job, kind="created", to_status="pending", actor=None, message="created")
        JobEvent.objects.create(
            job=job, kind="cancel_requested", actor=user, actor_label=user.username, message="cancel asked"
        )
    return [str(job.id) for job in jobs]


def _seed_schedules(user: User) -> list[int]:
    interval = job_schedule_create(
        owner=user,
        name="every-hour",
        task="long_running_task",
        kwargs={"seconds": 1},
        interval={"every": 1, "period": "hours"},
    )
    crontab = job_schedule_create(
        owner=user,
        name="weekdays",
        task="long_running_task",
        kwargs={"seconds": 1},
        crontab={"minute": "0", "hour": "8", "day_of_week": "mon-fri", "timezone": "Europe/Paris"},
        expires=timezone.now() + timezone.timedelta(days=30),
    )
    return [interval.pk, crontab.pk]


def _toml(value) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are TOML's; tables become inline ones."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {_toml(item)}" for key, item in value.items()) + "}"
    return json.dumps(value)


def _config(*, token: str, job_ids: list[str], schedule_ids: list[int], user_ids: list[int]) -> str:
    """schemathesis.toml for the run (https://schemathesis.readthedocs.io/en/stable/reference/configuration/)."""
    lines = [
        f"seed = {SEED}",
        "color = false",
        "[headers]",
        f'Authorization = "Bearer {token}"',
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        "deterministic = true",
        'database = "none"',
        "[checks]",
        "enabled = true",  # every check (`-c all`), positive_data_acceptance included
        # A 400 and a 422 too, which refusal_of_valid_data_is_semantic (schemathesis_checks.py) then judges.
        'positive_data_acceptance.expected-statuses = ["2xx", "3xx", "400", "401", "403", "404", "409", "422", "429", '
        '"5xx"]',
        "[dictionaries]",
        f"job_ids = {_toml({'values': job_ids})}",
        f"schedule_ids = {_toml({'values': schedule_ids})}",
        f"user_ids = {_toml({'values': user_ids})}",
    ]
    for prefix, dictionary in (("(jobs|tasks)", "job_ids"), ("schedules", "schedule_ids"), ("users", "user_ids")):
        binding = {"path.id": {"dictionary": dictionary, "probability": REAL_ID_PROBABILITY}}
        path_regex = rf"^/api/v1/{prefix}/\{{id\}}/"
        lines += ["[[operations]]", f"include-path-regex = {_toml(path_regex)}", f"parameters = {_toml(binding)}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def live_api(transactional_db):
    """The Procfile's web process on the test database and broker, with data to act on."""
    broker_url = settings.CELERY_BROKER_URL
    throttles = {f"THROTTLE_{scope}": UNTHROTTLED for scope in ("ANON", "USER", "LOGIN", "REGISTER")}
    server = AsgiServer(env={"DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": broker_url, **throttles})
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if broker_url.startswith("redis://"):
            redis.Redis.from_url(broker_url).flushdb()  # the jobs' messages: no worker ran them


@pytest.fixture
def run_config(live_api, tmp_path) -> Path:
    """A signed-up staff user's token and real ids, in the run's configuration file."""
    password = "a-long-enough-password-for-the-fuzzing-run"
    status, body = live_api.request(
        "POST",
        "/api/v1/auth/register/",
        body={"username": "fuzzer", "email": "fuzzer@example.com", "password": password},
    )
    assert status == 202, body  # sign-up answers 202 made or not (it reveals no account)
    # Staff, and an operator of queues, so that /users/ and the queue changes run their code.
    fuzzer = User.objects.get(username="fuzzer")
    fuzzer.is_staff = True
    fuzzer.save()
    fuzzer.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="change_queuecontrol"))
    status, tokens = live_api.request("POST", "/api/v1/auth/token/", body={"username": "fuzzer", "password": password})
    assert status == 200, tokens
    user, other = User.objects.get(username="fuzzer"), UserFactory()
    path = tmp_path / "schemathesis.toml"
    path.write_text(
        _config(
            token=tokens["access"],
            job_ids=_seed_jobs(user, other),
            schedule_ids=_seed_schedules(user),
            user_ids=[user.pk, other.pk],
        )
    )
    return path


def test_every_operation_conforms_to_the_schema(live_api, run_config, tmp_path):
    """0 server errors and 0 schema violations on every operation (the streams aside: see above)."""
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(run_config),
        "run",
        f"http://127.0.0.1:{live_api.port}/api/schema/?format=json",
        # Every check, positive_data_acceptance included: a request the document calls valid is accepted.
        "--checks",
        "all",
        # The live streams stay open while their job runs: tested in jobs/tests/streams/test_stream*.py instead.
        "--exclude-path-regex",
        "/stream/$",
    ]
    # The run's own check (a 400 to schema-valid data names only what no schema can say), importable from here.
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "taskhub.tests.schemathesis_checks",
        "PYTHONPATH": str(settings.BASE_DIR),
    }
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT, check=False
    )

    output = result.stdout + result.stderr
    (tmp_path / "schemathesis-output.txt").write_text(output)  # whole, where the failure message says
    print(output[-3000:])  # the summary, shown with pytest -s or -rP
    whole = f"whole output: {tmp_path / 'schemathesis-output.txt'}\n"
    assert result.returncode == 0, whole + output[-20000:] + "\n--- server log ---\n" + live_api.output()[-5000:]
    _, document = live_api.request("GET", "/api/schema/?format=json")
    operations = [
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete") and not path.endswith("/stream/")
    ]
    tested = re.search(r"Tested: (\d+)", output)
    assert tested and int(tested.group(1)) == len(operations) > 30, output[-3000:]
