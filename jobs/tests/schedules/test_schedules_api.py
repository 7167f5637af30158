"""/api/v1/schedules/: periodic jobs stored by django-celery-beat, owner-scoped like jobs.

Bad input is a 400 naming the field, and then nothing is written: no periodic task, no owner
row, no interval or crontab row.
"""

import dataclasses
import json
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask, PeriodicTasks

from conftest import assert_error
from jobs.catalog import catalog
from jobs.models import Job, JobSchedule
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory

from .conftest import BODY, URL, rows, url

pytestmark = pytest.mark.django_db


def test_create_with_an_interval(user, user_client):
    response = user_client.post(URL, BODY)

    assert response.status_code == 201, response.content
    body = response.json()
    periodic_task = PeriodicTask.objects.get(pk=body["id"])
    # The alias is stored as the catalog's canonical name; the priority is the task's default.
    assert periodic_task.task == LONG_RUNNING_TASK
    assert (periodic_task.interval.every, periodic_task.interval.period) == (1, "minutes")
    assert periodic_task.crontab is None
    assert json.loads(periodic_task.args) == [] and json.loads(periodic_task.kwargs) == {"seconds": 5}
    assert (periodic_task.job_schedule.owner, periodic_task.job_schedule.priority) == (user, "normal")
    assert body == {
        "id": periodic_task.pk,
        "name": "nightly export",
        "task": LONG_RUNNING_TASK,
        "args": [],
        "kwargs": {"seconds": 5},
        "priority": "normal",
        "unique": None,
        "concurrency": None,
        "interval": {"every": 1, "period": "minutes"},
        "crontab": None,
        "enabled": True,
        "start_time": None,
        "expires": None,
        "one_off": False,
        "expires_in": None,
        "description": "",
        "last_run_at": None,
        "total_run_count": 0,
        "date_changed": body["date_changed"],
        "owner": user.username,
        "owner_id": user.id,
    }


def test_create_with_a_crontab_in_a_time_zone(user_client):
    crontab = {"minute": "*/15", "hour": "8-18", "day_of_week": "mon-fri", "timezone": "Europe/Paris"}
    start, end = timezone.now() + timedelta(days=1), timezone.now() + timedelta(days=30)
    response = user_client.post(
        URL,
        {**BODY, "interval": None, "crontab": crontab, "priority": "high", "start_time": start, "expires": end},
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["crontab"] == {**crontab, "day_of_month": "*", "month_of_year": "*"}
    assert body["interval"] is None and body["priority"] == "high"
    periodic_task = PeriodicTask.objects.get(pk=body["id"])
    assert str(periodic_task.crontab.timezone) == "Europe/Paris"
    assert (periodic_task.start_time, periodic_task.expires) == (start, end)


def test_equal_timings_share_one_row(make_schedule):
    make_schedule()
    make_schedule()
    assert IntervalSchedule.objects.filter(every=1, period="minutes").count() == 1


BAD_INPUT = [
    ({"crontab": {"minute": "61"}, "interval": None}, "crontab.minute", "61"),
    ({"crontab": {"hour": "25"}, "interval": None}, "crontab.hour", "25"),
    ({"crontab": {"day_of_week": "funday"}, "interval": None}, "crontab.day_of_week", "funday"),
    ({"crontab": {"minute": "5", "timezone": "Mars/Olympus"}, "interval": None}, "crontab.timezone", "Mars/Olympus"),
    ({"crontab": {"minute": "5"}}, "interval", "not both"),
    ({"interval": None}, "interval", "interval"),
    ({"interval": {"every": 0, "period": "seconds"}}, "interval.every", "1"),
    ({"interval": {"every": 5, "period": "weeks"}}, "interval.period", "weeks"),
    ({"interval": {"every": 5, "period": "microseconds"}}, "interval.period", "microseconds"),
    ({"task": "jobs.tasks.maintenance_tasks.dispatch_jobs"}, "task", "Unknown task"),
    ({"task": "os.system"}, "task", "Unknown task"),
    ({"kwargs": {"seconds": "soon"}}, "kwargs", "kwargs.seconds"),
    ({"kwargs": {"seconds": 5, "bogus": 1}}, "kwargs", "kwargs.bogus"),
    ({"interval": {"every": 5}}, "interval.period", "required"),
    ({"interval": {"every": 5, "period": "hours", "at": 1}}, "interval.at", "Unknown field"),
    ({"interval": "hourly"}, "interval", "dictionary"),
    ({"args": [1, 2, 3]}, "args", "positional"),
    ({"args": {"seconds": 5}}, "args", "array"),
    ({"priority": "asap"}, "priority", "asap"),
    ({"name": ""}, "name", ""),
    ({"start_time": "2030-01-02T00:00:00Z", "expires": "2030-01-01T00:00:00Z"}, "expires", "start_time"),
    ({"owner": 1}, "owner", "read-only"),
    ({"queue": "default"}, "queue", "Unknown field"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD_INPUT)
def test_bad_input_is_a_400_naming_the_field_and_writes_nothing(user_client, nothing_written, change, field, words):
    with nothing_written():
        body = assert_error(user_client.post(URL, {**BODY, **change}), 400, field=field)
    assert words in body["message"], body


def test_a_missing_name_or_task_is_refused(user_client, nothing_written):
    for field in ("name", "task"):
        with nothing_written():
            assert_error(user_client.post(URL, {k: v for k, v in BODY.items() if k != field}), 400, field=field)


def test_a_name_the_user_already_gave_is_refused(make_schedule, user_client, nothing_written):
    make_schedule(name="reports")
    with nothing_written():
        assert_error(user_client.post(URL, {**BODY, "name": "reports"}), 400, code="duplicate_name", field="name")


def test_a_staff_only_task_is_refused_to_a_plain_user(user_client, staff_client, monkeypatch, nothing_written):
    entry = catalog.get(LONG_RUNNING_TASK)
    monkeypatch.setitem(catalog._entries, entry.name, dataclasses.replace(entry, staff_only=True))
    with nothing_written():
        assert_error(user_client.post(URL, BODY), 403, code="permission_denied")
    assert staff_client.post(URL, BODY).status_code == 201


def test_anonymous_requests_are_refused(api_client):
    assert_error(api_client.get(URL), 401)
    assert_error(api_client.post(URL, BODY), 401)


def test_owners_list_their_schedules_and_staff_list_all(make_schedule, other_client, user_client, staff_client):
    mine, theirs = make_schedule(), make_schedule(client=other_client)
    # Beat's own entries (no owner) are not schedules of the API.
    PeriodicTask.objects.create(
        name="sweep", task="jobs.tasks.maintenance_tasks.dispatch_jobs", interval=IntervalSchedule.objects.first()
    )

    def listed(client) -> set[int]:
        response = client.get(URL)
        assert response.status_code == 200, response.content
        return {schedule["id"] for schedule in response.json()["results"]}

    assert listed(user_client) == {mine["id"]}
    assert listed(other_client) == {theirs["id"]}
    assert listed(staff_client) == {mine["id"], theirs["id"]}
    assert staff_client.get(url(mine["id"])).json()["owner"] == mine["owner"]


@pytest.mark.parametrize(
    ("method", "action", "data"),
    [
        ("get", "", None),
        ("patch", "", {"kwargs": {"seconds": 1}}),
        ("put", "", BODY),
        ("delete", "", None),
        ("post", "enable", None),
        ("post", "disable", None),
        ("post", "run-now", None),
    ],
)
def test_another_users_schedule_is_a_404(make_schedule, other_client, published, method, action, data):
    schedule = make_schedule()
    before = PeriodicTask.objects.filter(pk=schedule["id"]).values().get()
    response = getattr(other_client, method)(url(schedule["id"], action), data)
    assert_error(response, 404, code="not_found")
    assert PeriodicTask.objects.filter(pk=schedule["id"]).values().get() == before
    assert Job.objects.count() == 0 and published == []


def test_unknown_schedules_are_404(user_client):
    assert_error(user_client.get(url(999999)), 404)
    assert user_client.get(f"{URL}abc/").status_code == 404


def test_patch_changes_only_what_is_given_and_checks_the_whole(make_schedule, user_client):
    schedule = make_schedule(priority="low")

    response = user_client.patch(url(schedule["id"]), {"kwargs": {"seconds": 1}, "name": "renamed"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["kwargs"], body["name"], body["priority"]) == ({"seconds": 1}, "renamed", "low")
    assert body["interval"] == {"every": 1, "period": "minutes"}

    crontab = {"minute": "0", "hour": "3", "day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}
    body = user_client.patch(url(schedule["id"]), {"crontab": {**crontab, "timezone": "UTC"}}).json()
    assert body["interval"] is None and body["crontab"] == {**crontab, "timezone": "UTC"}

    # A new task is checked against the kept arguments.
    changed = user_client.patch(url(schedule["id"]), {"task": "jobs.tasks.common_tasks.flaky_task"})
    assert "kwargs.seconds" in assert_error(changed, 400, field="kwargs")["message"]
    assert PeriodicTask.objects.get(pk=schedule["id"]).task == LONG_RUNNING_TASK


@pytest.mark.parametrize(("change", "field"), [entry[:2] for entry in BAD_INPUT if entry[1] != "interval"])
def test_bad_changes_are_refused_and_change_nothing(make_schedule, user_client, change, field):
    schedule = make_schedule()
    before = (PeriodicTask.objects.filter(pk=schedule["id"]).values().get(), rows())
    assert_error(user_client.patch(url(schedule["id"]), change), 400, field=field)
    assert (PeriodicTask.objects.filter(pk=schedule["id"]).values().get(), rows()) == before


def test_patch_with_both_timings_or_both_null_is_refused(make_schedule, user_client):
    schedule = make_schedule()
    both = {"interval": {"every": 1, "period": "hours"}, "crontab": {"minute": "1"}}
    assert_error(user_client.patch(url(schedule["id"]), both), 400, field="interval")
    assert_error(user_client.patch(url(schedule["id"]), {"interval": None, "crontab": None}), 400, field="interval")


def test_put_replaces_the_schedule(make_schedule, user_client):
    schedule = make_schedule(priority="low", description="old")
    body = {"name": "replaced", "task": "flaky_task", "interval": {"every": 1, "period": "hours"}}

    response = user_client.put(url(schedule["id"]), body)

    assert response.status_code == 200, response.content
    replaced = response.json()
    assert replaced["task"] == "jobs.tasks.common_tasks.flaky_task"
    assert (replaced["kwargs"], replaced["priority"], replaced["description"]) == ({}, "low", "")
    assert_error(user_client.put(url(schedule["id"]), {"name": "x", "task": "flaky_task"}), 400, field="interval")


def test_disable_and_enable_tell_beat(make_schedule, user_client):
    schedule = make_schedule()
    PeriodicTask.objects.filter(pk=schedule["id"]).update(last_run_at=timezone.now())
    before = PeriodicTasks.last_change()

    response = user_client.post(url(schedule["id"], "disable"))

    assert response.status_code == 200, response.content
    assert response.json()["enabled"] is False
    assert PeriodicTasks.last_change() > before  # beat re-reads its schedule
    assert user_client.post(url(schedule["id"], "enable")).json()["enabled"] is True
    # Enabled again, it counts its first interval from now (no catch-up of the time it was off).
    assert PeriodicTask.objects.get(pk=schedule["id"]).last_run_at is None


def test_run_now_creates_a_tracked_job_of_the_schedule(
    make_schedule, user, user_client, staff_client, published, django_capture_on_commit_callbacks
):
    schedule = make_schedule(priority="high")
    user_client.post(url(schedule["id"], "disable"))

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(url(schedule["id"], "run-now"))

    assert response.status_code == 201, response.content
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.schedule_id, job.scheduled_for, job.owner) == (schedule["id"], None, user)
    assert (job.celery_task_name, job.kwargs, job.priority, job.queue) == (
        LONG_RUNNING_TASK,
        {"seconds": 5},
        "high",
        "high_priority",
    )
    assert response.json()["schedule"] == schedule["id"]
    assert [message["id"] for message in published] == [str(job.id)]


def test_run_now_of_a_schedule_whose_arguments_no_longer_fit_is_a_400(make_schedule, user_client, published):
    schedule = make_schedule()
    PeriodicTask.objects.filter(pk=schedule["id"]).update(kwargs=json.dumps({"seconds": -1}))
    assert (
        "kwargs.seconds"
        in assert_error(user_client.post(url(schedule["id"], "run-now")), 400, field="kwargs")["message"]
    )
    assert Job.objects.count() == 0 and published == []


def test_delete_keeps_the_jobs_unlinked(make_schedule, user, user_client):
    schedule = make_schedule()
    job = JobFactory(owner=user, schedule_id=schedule["id"])

    assert user_client.delete(url(schedule["id"])).status_code == 204

    assert not PeriodicTask.objects.filter(pk=schedule["id"]).exists()
    assert not JobSchedule.objects.exists()
    job.refresh_from_db()
    assert job.schedule_id is None
    assert_error(user_client.get(url(schedule["id"])), 404)


def test_jobs_show_and_filter_by_their_schedule(make_schedule, user, user_client):
    schedule = make_schedule()
    scheduled, other = JobFactory(owner=user, schedule_id=schedule["id"]), JobFactory(owner=user)

    response = user_client.get("/api/v1/jobs/", {"schedule": schedule["id"]})

    assert [job["id"] for job in response.json()["results"]] == [str(scheduled.id)]
    assert user_client.get(f"/api/v1/jobs/{other.id}/").json()["schedule"] is None
    assert user_client.get(f"/api/v1/jobs/{scheduled.id}/").json()["schedule"] == schedule["id"]
    assert_error(user_client.get("/api/v1/jobs/", {"schedule": "nightly"}), 400, field="schedule")
