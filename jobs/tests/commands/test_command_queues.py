"""manage.py queues: list, pause, resume, limit, unlimit; exit status 2 on bad input, nothing changed."""

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from jobs.models import QueueControl, QueueControlChange, RateLimit
from jobs.queues.selectors import queue_list
from jobs.queues.serializers import QueueSerializer
from jobs.tests.factories import make
from taskhub.testing import child_database_url

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("queues", *args, stdout=out)
    return out.getvalue()


def test_pause_resume_limit_unlimit_and_list():
    UserFactory(username="ops")
    make(), make("running")
    assert run("pause", "default", "--user", "ops", "--reason", "incident") == "Paused default.\n"
    assert run("pause", "default") == "default was paused already.\n"
    assert run("limit", "default", "5/10") == "Rate limit of queue default: 5 per 10s.\n"
    assert "jobs.tasks.common_tasks.long_running_task: 2 per 60s" in run("limit", "long_running_task", "2/60", "--task")
    listing = run("list")
    assert listing.startswith("queue           state     rate limit      pending     held  running  oldest pending\n")
    line = next(line for line in listing.splitlines() if line.startswith("default"))
    assert line.startswith("default         paused    5 per 10 s            1        1        1"), line
    assert line.endswith("s") and " 0." in line, line  # the pending job's age, e.g. 0.1s
    assert "high_priority   running   none                  0        0        0               -" in listing
    assert "task jobs.tasks.common_tasks.long_running_task: 2/min" in listing
    assert run("resume", "default") == "Resumed default: sent 1 held jobs.\n"
    assert run("unlimit", "default") == "Cleared the rate limit of default.\n"
    assert run("unlimit", "default") == "default had no rate limit.\n"
    changes = list(QueueControlChange.objects.order_by("id").values_list("action", "source", "actor_label", "reason"))
    assert changes[0] == ("paused", "command", "user ops", "incident")
    assert [c[0] for c in changes] == ["paused", "limit_set", "limit_set", "resumed", "limit_cleared"]


@pytest.mark.parametrize(
    "args,words",
    [
        (["pause", "nope"], "'nope' is not a queue"),
        (["limit", "default", "0/10"], "limit: must be a whole number from 1"),
        (["limit", "default", "--", "-5/10"], "limit: must be a whole number from 1"),
        (["limit", "default", "5/0"], "period: must be a whole number from 1"),
        (["limit", "default", "five"], "rate: expected N/PERIOD"),
        (["limit", "nope", "5/10", "--task"], "'nope' is not a registered task"),
        (["pause"], "pause: name the queue"),
        (["pause", "default", "--user", "ghost"], "--user: no active user 'ghost'"),
        (["resume", "long_running_task", "--task"], "--task: only limit and unlimit"),
    ],
)
def test_bad_input_exits_2_naming_the_problem_and_changes_nothing(args, words):
    with pytest.raises(CommandError) as refused:
        run(*args)
    assert refused.value.returncode == 2 and words in str(refused.value)
    assert not QueueControl.objects.filter(paused=True).exists()
    assert not RateLimit.objects.exists() and not QueueControlChange.objects.exists()


def test_help_is_short_with_examples():
    parser = load_command_class("jobs", "queues").create_parser("manage.py", "queues")
    text = parser.format_help()
    assert "Examples:\n  manage.py queues list --json\n  manage.py queues pause default" in text
    assert "Exit status 0 done (or nothing to change), 2 bad input" in text
    assert len(parser.description) <= 120, parser.description


@pytest.mark.django_db(transaction=True)
def test_as_a_real_process_exit_status_and_stderr_tell_the_outcome():
    env = {**os.environ, "DATABASE_URL": child_database_url()}

    def queues(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", "queues", *args]
        return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)

    bad = queues("pause", "defualt")
    assert bad.returncode == 2 and "'defualt' is not a queue" in bad.stderr, bad.stderr
    good = queues("pause", "default")
    assert good.returncode == 0 and good.stdout == "Paused default.\n", good.stderr
    assert QueueControl.objects.get(name="default").paused


def test_list_json_is_the_queues_endpoints_body():
    make(), make("running")
    run("pause", "default", "--reason", "incident")
    document = json.loads(run("list", "--json"))
    expected = json.loads(json.dumps(QueueSerializer(queue_list(), many=True).data))
    ages = (
        [queue.pop("oldest_pending_seconds") for queue in document],
        [q.pop("oldest_pending_seconds") for q in expected],
    )
    assert document == expected
    assert [age is None for age in ages[0]] == [age is None for age in ages[1]] == [True, False, True]  # moments apart
    default = next(queue for queue in document if queue["name"] == "default")
    assert (default["paused"], default["reason"], default["pending"], default["running"]) == (True, "incident", 1, 1)
