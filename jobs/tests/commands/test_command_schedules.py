"""manage.py schedules list | run-now | enable | disable: the schedules API's selectors and services.
Bad input is exit status 2, a schedule refused (not found, ...) exit status 1; nothing written either way."""

import io
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from accounts.tests.factories import UserFactory
from jobs.models import Job
from jobs.schedules.selectors import job_schedule_list_all
from jobs.schedules.serializers import ScheduleSerializer
from jobs.schedules.services import job_schedule_create
from jobs.serializers import JobSerializer
from taskhub.testing import child_database_url


def schedules(*args: str) -> str:
    out = io.StringIO()
    call_command("schedules", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*args: str, returncode: int) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("schedules", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == returncode, caught.value
    return str(caught.value)


def make_schedule(owner, name: str = "nightly export", **changes) -> PeriodicTask:
    request = {"task": "long_running_task", "kwargs": {"seconds": 1}}
    timing = {} if "crontab" in changes else {"interval": {"every": 2, "period": "hours"}}
    return job_schedule_create(owner=owner, name=name, **request, **timing, **changes)


@pytest.mark.django_db
def test_list_shows_every_schedule_to_the_operator_and_json_is_the_apis(user, other_user):
    mine = make_schedule(user)
    theirs = make_schedule(other_user, "hourly", crontab={"minute": "0", "timezone": "Europe/Paris"})
    lines = schedules("list").splitlines()
    assert lines[0].split()[:4] == ["id", "enabled", "name", "task"]
    assert lines[1].startswith(f"{theirs.pk:<6}yes      hourly")
    assert "cron 0 * * * * Europe/Paris" in lines[1] and other_user.username in lines[1]
    assert "every 2 hours" in lines[2] and "long_running_task" in lines[2]
    document = json.loads(schedules("list", "--json"))
    # The rows as the API reads them (job_schedule_list_all: the description read cut to its limit).
    expected = ScheduleSerializer([job_schedule_list_all().get(pk=pk) for pk in (theirs.pk, mine.pk)], many=True).data
    assert document == json.loads(json.dumps(expected))
    assert [entry["id"] for entry in json.loads(schedules("list", "--user", user.username, "--json"))] == [mine.pk]


@pytest.mark.django_db
def test_disable_enable_and_run_now(user, django_capture_on_commit_callbacks):
    schedule = make_schedule(user)
    assert schedules("disable", str(schedule.pk)) == f"Schedule {schedule.pk} (nightly export): disabled.\n"
    assert not PeriodicTask.objects.get(pk=schedule.pk).enabled
    document = json.loads(schedules("enable", str(schedule.pk), "--json"))
    assert document["enabled"] is True and document["id"] == schedule.pk
    with django_capture_on_commit_callbacks(execute=True):
        out = schedules("run-now", str(schedule.pk))
    job = Job.objects.get(schedule_id=schedule.pk)
    assert out == f"Schedule {schedule.pk} (nightly export): job {job.id} created.\n"
    assert (job.owner, job.kwargs) == (user, {"seconds": 1})
    with django_capture_on_commit_callbacks(execute=True):
        document = json.loads(schedules("run-now", str(schedule.pk), "--json"))
    # The API's 201 body: the job as created (its message is sent after the commit).
    assert list(document) == list(JobSerializer.Meta.fields)
    assert (document["status"], document["schedule"], document["owner"]) == ("pending", schedule.pk, user.username)


@pytest.mark.django_db
def test_another_users_schedule_is_not_found_as_a_user(user, other_user):
    theirs = make_schedule(other_user)
    for action in ("run-now", "enable", "disable"):
        error = refused(action, str(theirs.pk), "--user", user.username, returncode=1)
        assert error == f"Schedule {theirs.pk}: not found."
    assert refused("disable", "999999", returncode=1) == "Schedule 999999: not found."
    assert PeriodicTask.objects.get(pk=theirs.pk).enabled and not Job.objects.exists()


@pytest.mark.django_db
def test_run_now_refused_by_the_service_exits_1_and_creates_nothing(user):
    schedule = make_schedule(user)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    error = refused("run-now", str(schedule.pk), returncode=1)
    assert error == f"Cannot run schedule {schedule.pk} now: Schedule 'nightly export' belongs to {user.username}, " + (
        "whose account is inactive."
    )
    assert not Job.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enable", "seven"], "ID: 'seven' is not a schedule id (a whole number)."),
        (["run-now", "-3"], "ID: '-3' is not a schedule id (a whole number)."),
        (["list", "--user", "alcie"], "--user: no user named 'alcie'. Did you mean 'alice'?"),
    ],
)
def test_bad_input_exits_2(args, message):
    UserFactory(username="alice")
    assert refused(*args, returncode=2) == message


def test_help_has_examples():
    text = load_command_class("jobs", "schedules").create_parser("manage.py", "schedules").format_help()
    for example in ("manage.py schedules list", "manage.py schedules run-now 3", "manage.py schedules disable 3"):
        assert example in text


@pytest.mark.django_db(transaction=True)
def test_as_a_real_process():
    owner = UserFactory()
    schedule = make_schedule(owner)
    env = {**os.environ, "DATABASE_URL": child_database_url()}

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "manage.py", "schedules", *args]
        return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)

    good = run("disable", str(schedule.pk))
    assert good.returncode == 0 and "disabled" in good.stdout, good.stderr
    assert not PeriodicTask.objects.get(pk=schedule.pk).enabled
    missing = run("enable", "999999")
    assert missing.returncode == 1 and "Schedule 999999: not found." in missing.stderr
    bad = run("run-now", "x")
    assert bad.returncode == 2 and "ID: 'x' is not a schedule id" in bad.stderr
