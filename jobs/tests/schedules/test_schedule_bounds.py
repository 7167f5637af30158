"""What a user may store as schedules: names of their own, within limits beat can bear.

Schedule names are per owner (another user's names are neither refused nor revealed), beat's
own entries have names no user may take, and a user's schedules are bounded in number, in
size and in frequency. Production defaults throughout.
"""

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models.functions import Length
from django_celery_beat.models import PeriodicTask

from conftest import assert_error
from jobs.models import JobSchedule
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import LONG_RUNNING_TASK

from .conftest import BODY, URL, rows, url

pytestmark = pytest.mark.django_db

RESERVED = ["taskhub-rollup-metrics", "taskhub-purge-jobs", "taskhub-anything", "TaskHub-Dispatch-Jobs"]
RESERVED += ["celery.backend_cleanup"]


@pytest.mark.parametrize("name", RESERVED)
def test_beats_own_entry_names_are_refused(user_client, name, nothing_written):
    with nothing_written():
        body = assert_error(user_client.post(URL, {**BODY, "name": name}), 400, code="reserved_name", field="name")
    assert "reserved" in body["message"]


def test_a_rename_into_beats_names_is_refused(user_client, make_schedule):
    schedule = make_schedule(name="mine")
    assert_error(user_client.patch(url(schedule["id"]), {"name": "taskhub-purge-jobs"}), 400, field="name")
    assert user_client.get(url(schedule["id"])).json()["name"] == "mine"


def test_names_are_per_owner_and_reveal_nothing(user, other_user, user_client, other_client, nothing_written):
    mine = user_client.post(URL, {**BODY, "name": "reports"})
    theirs = other_client.post(URL, {**BODY, "name": "reports"})

    assert (mine.status_code, theirs.status_code) == (201, 201), (mine.content, theirs.content)
    assert mine.json()["name"] == theirs.json()["name"] == "reports"
    stored = dict(PeriodicTask.objects.values_list("pk", "name"))
    assert stored == {
        mine.json()["id"]: f"user:{user.pk}:reports",
        theirs.json()["id"]: f"user:{other_user.pk}:reports",
    }
    with nothing_written():
        assert_error(user_client.post(URL, {**BODY, "name": "reports"}), 400, code="duplicate_name", field="name")


def test_a_rename_onto_ones_own_name_is_refused(user_client, make_schedule):
    make_schedule(name="first")
    second = make_schedule(name="second")
    assert_error(user_client.patch(url(second["id"]), {"name": "first"}), 400, code="duplicate_name", field="name")
    assert user_client.patch(url(second["id"]), {"name": "second"}).status_code == 200  # its own name: kept


def test_a_firings_job_is_named_as_the_user_named_the_schedule(user_client, make_schedule, published):
    schedule = make_schedule(name="reports")
    response = user_client.post(url(schedule["id"], "run-now"))
    assert response.status_code == 201, response.content
    assert response.json()["name"] == "reports"


def test_a_user_has_at_most_the_configured_number_of_schedules(user, user_client, other_client, nothing_written):
    limit = settings.JOB_SCHEDULE_MAX_PER_USER
    assert limit == 50  # the production default
    for number in range(limit):
        job_schedule_create(
            owner=user, name=f"s{number}", task=LONG_RUNNING_TASK, interval={"every": 1, "period": "hours"}
        )

    with nothing_written():
        body = assert_error(user_client.post(URL, BODY), 429, code="schedule_limit")
    assert f"at most {limit} schedules" in body["message"]
    assert other_client.post(URL, BODY).status_code == 201  # per user
    user_client.delete(url(PeriodicTask.objects.filter(job_schedule__owner=user).first().pk))
    assert user_client.post(URL, BODY).status_code == 201


TOO_LONG = [
    ({"description": "d" * 1001}, "description", "1000"),
    ({"name": "n" * 161}, "name", "160"),
]


@pytest.mark.parametrize(("change", "field", "words"), TOO_LONG)
def test_long_fields_are_refused(user_client, make_schedule, nothing_written, change, field, words):
    with nothing_written():
        body = assert_error(user_client.post(URL, {**BODY, **change}), 400, field=field)
    assert words in body["message"]
    schedule = make_schedule()
    assert_error(user_client.patch(url(schedule["id"]), change), 400, field=field)


def test_the_longest_allowed_fields_are_stored(user_client):
    response = user_client.post(URL, {**BODY, "name": "n" * 160, "description": "d" * 1000})
    assert response.status_code == 201, response.content
    assert (len(response.json()["name"]), len(response.json()["description"])) == (160, 1000)


@pytest.mark.parametrize(
    "interval",
    [{"every": 59, "period": "seconds"}, {"every": 1, "period": "seconds"}, {"every": 30, "period": "seconds"}],
)
def test_plain_users_schedule_at_most_once_a_minute(user_client, make_schedule, nothing_written, interval):
    assert settings.JOB_SCHEDULE_MIN_INTERVAL_SECONDS == 60  # the production default
    with nothing_written():
        assert_error(user_client.post(URL, {**BODY, "interval": interval}), 400, field="interval")
    schedule = make_schedule()
    assert_error(user_client.patch(url(schedule["id"]), {"interval": interval}), 400, field="interval")


def test_once_a_minute_and_crontabs_are_allowed_and_staff_are_exempt(user_client, staff_client):
    for client, interval in (
        (user_client, {"every": 60, "period": "seconds"}),
        (staff_client, {"every": 2, "period": "seconds"}),
    ):
        response = client.post(URL, {**BODY, "name": str(interval), "interval": interval})
        assert response.status_code == 201, response.content
    every_minute = {**BODY, "name": "cron", "interval": None, "crontab": {"minute": "*"}}
    assert user_client.post(URL, every_minute).status_code == 201


def test_the_interval_limit_names_the_minimum(user_client):
    body = assert_error(user_client.post(URL, {**BODY, "interval": {"every": 5, "period": "seconds"}}), 400)
    assert "60 seconds" in body["message"]


def test_lists_never_return_huge_descriptions(user, user_client, make_schedule):
    schedule = make_schedule()
    # Written before the limit existed (or by the admin): 2.4 MB.
    PeriodicTask.objects.filter(pk=schedule["id"]).update(description="x" * 2_400_000)
    assert PeriodicTask.objects.annotate(size=Length("description")).get(pk=schedule["id"]).size == 2_400_000

    for response in (user_client.get(URL), user_client.get(url(schedule["id"]))):
        assert response.status_code == 200
        assert len(response.content) < 10_000, len(response.content)
    listed = user_client.get(URL).json()["results"][0]
    assert listed["description"].startswith("x" * 1000) and len(listed["description"]) <= 1001


def test_the_list_is_paginated(user, user_client):
    for number in range(3):
        job_schedule_create(
            owner=user, name=f"s{number}", task=LONG_RUNNING_TASK, interval={"every": 1, "period": "hours"}
        )
    page = user_client.get(URL, {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    assert rows()[0] == JobSchedule.objects.count() == 3


def test_the_names_migration_renames_existing_rows_and_back(user, other_user):
    def names() -> dict[int, str]:
        return dict(PeriodicTask.objects.values_list("pk", "name"))

    mine = job_schedule_create(
        owner=user, name="reports", task=LONG_RUNNING_TASK, interval={"every": 1, "period": "hours"}
    )
    theirs = job_schedule_create(
        owner=other_user, name="reports", task=LONG_RUNNING_TASK, interval={"every": 1, "period": "hours"}
    )
    # The rows' deferred foreign-key checks first: a later migration alters jobs_jobschedule, which
    # PostgreSQL refuses while the transaction has pending trigger events.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    executor = MigrationExecutor(connection)
    executor.migrate([("jobs", "0011_fair_share_and_urgent")])
    # Back: bare names where they are free (they were unique across users); a shared one keeps its prefix.
    assert names() == {mine.pk: "reports", theirs.pk: f"user:{other_user.pk}:reports"}
    PeriodicTask.objects.filter(pk=theirs.pk).update(name="x" * 200)  # as long as the column allows

    MigrationExecutor(connection).migrate([("jobs", "0012_schedule_names_per_owner")])

    renamed = names()
    assert renamed[mine.pk] == f"user:{user.pk}:reports"
    assert renamed[theirs.pk] == f"user:{other_user.pk}:" + "x" * (200 - len(f"user:{other_user.pk}:"))
