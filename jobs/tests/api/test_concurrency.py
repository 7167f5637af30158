"""Concurrency keys over HTTP: the create's and each bulk item's ``concurrency`` field, bad values as
400s naming the field with nothing written, the list filter ``?concurrency_key=``, the answer's
``concurrency`` and the task catalog's rule; /metrics counts the jobs waiting on a key."""

import pytest
from django.test import Client
from django.utils import timezone

from conftest import assert_error
from jobs.services.execution import job_start
from jobs.tests.factories import LONG_RUNNING_TASK, ids, make
from jobs.tests.observability.test_metrics import scrape, value

pytestmark = pytest.mark.django_db

CREATE, BULK, LIST = "/api/v1/jobs/", "/api/v1/jobs/bulk/", "/api/v1/jobs/"


def body(concurrency, **fields) -> dict:
    return {"celery_task_name": LONG_RUNNING_TASK, "concurrency": concurrency, **fields}


def test_a_create_with_a_key_answers_it_and_the_list_filters_by_it(user_client, user):
    response = user_client.post(CREATE, body({"key": "tenant-7", "limit": 2}), format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["concurrency"] == {"key": "tenant-7", "limit": 2, "waiting_since": None}
    plain = user_client.post(CREATE, body(None), format="json").json()
    assert plain["concurrency"] is None
    make(owner=user, concurrency_key="tenant-8", concurrency_limit=1)

    listed = user_client.get(LIST, {"concurrency_key": "tenant-7"})
    assert ids(listed) == [created["id"]]
    assert listed.json()["results"][0]["concurrency"]["key"] == "tenant-7"
    assert user_client.get(LIST, {"concurrency_key": "nobody"}).json()["results"] == []


def test_a_waiting_job_shows_since_when_it_waits(user_client, staff_user):
    running = make(owner=staff_user, concurrency_key="k", concurrency_limit=1)
    waiting = make(owner=staff_user, concurrency_key="k", concurrency_limit=1)
    job_start(job_id=running.id, worker="w:1")
    job_start(job_id=waiting.id, worker="w:2")
    staff = Client()
    staff.force_login(staff_user)
    detail = staff.get(f"/api/v1/jobs/{waiting.id}/").json()
    assert detail["status"] == "pending" and detail["concurrency"]["waiting_since"] is not None
    timeline = staff.get(f"/api/v1/jobs/{waiting.id}/events/").json()
    lines = timeline["results"] if isinstance(timeline, dict) else timeline
    assert [line["message"] for line in lines if line["kind"] == "concurrency"] == [
        "Waiting: concurrency key k at its limit 1."
    ]


@pytest.mark.parametrize(
    ("concurrency", "field"),
    [
        ({"key": "", "limit": 1}, "concurrency.key"),
        ({"key": "k" * 256, "limit": 1}, "concurrency.key"),
        ({"key": None, "limit": 1}, "concurrency.key"),
        ({"key": "k", "limit": 0}, "concurrency.limit"),
        ({"key": "k", "limit": -3}, "concurrency.limit"),
        ({"key": "k", "limit": "1"}, "concurrency.limit"),
        ({"key": "k", "limit": 2.5}, "concurrency.limit"),
        ({"key": "k", "limit": 10**12}, "concurrency.limit"),
        ({"key": "k"}, "concurrency.limit"),
        ({"key": "k", "limit": 1, "period": 5}, "concurrency.period"),
        ("tenant-7", "concurrency"),
        ([], "concurrency"),
    ],
)
def test_a_bad_concurrency_is_a_400_naming_the_field_and_writes_nothing(
    user_client, nothing_written, concurrency, field
):
    with nothing_written():
        response = user_client.post(CREATE, body(concurrency), format="json")
    answer = assert_error(response, 400, field=field)
    assert answer["message"].startswith(f"{field}: ")


def test_a_bad_concurrency_in_one_bulk_item_names_the_item_and_writes_nothing(user_client, nothing_written):
    items = [body({"key": "a", "limit": 1}), body({"key": "b", "limit": 0})]
    with nothing_written():
        response = user_client.post(BULK, {"jobs": items}, format="json")
    assert_error(response, 400, field="jobs[1].concurrency.limit")


def test_each_bulk_item_has_its_own_key(user_client):
    items = [body({"key": "a", "limit": 1}), body(None), body({"key": "b", "limit": 3})]
    response = user_client.post(BULK, {"jobs": items}, format="json")
    assert response.status_code == 201, response.content
    assert [job["concurrency"] and job["concurrency"]["key"] for job in response.json()] == ["a", None, "b"]


def test_the_task_catalog_shows_a_tasks_rule(user_client):
    entries = {entry["name"]: entry for entry in user_client.get("/api/v1/task-catalog/").json()}
    assert entries[LONG_RUNNING_TASK]["concurrency"] is None  # no built-in task declares one


def test_metrics_count_the_jobs_waiting_on_a_concurrency_key(staff_user):
    now = timezone.now()
    make(owner=staff_user, concurrency_key="k", concurrency_limit=1, concurrency_waiting_since=now)
    make(owner=staff_user, concurrency_key="j", concurrency_limit=1, concurrency_waiting_since=now)
    make(owner=staff_user, concurrency_key="k", concurrency_limit=1)  # pending, not (yet) refused
    make("succeeded", owner=staff_user, concurrency_key="k", concurrency_limit=1, concurrency_waiting_since=now)
    client = Client()
    client.force_login(staff_user)
    assert value(scrape(client), "taskhub_jobs_waiting_concurrency_key") == 2


def test_a_key_is_shared_across_owners_and_reveals_none_of_their_jobs(user, user_client, other_user, other_client):
    """README "Unique jobs", Notes: unique keys are per owner, concurrency keys are one name for everybody."""
    mine = user_client.post(CREATE, body({"key": "partner-api", "limit": 1}), format="json").json()
    theirs = other_client.post(CREATE, body({"key": "partner-api", "limit": 1}), format="json").json()
    assert job_start(job_id=theirs["id"], worker="w:1") is not None
    assert job_start(job_id=mine["id"], worker="w:2") is None  # the other owner's job holds the key's one place
    for client, own in ((user_client, mine), (other_client, theirs)):
        assert ids(client.get(LIST, {"concurrency_key": "partner-api"})) == [own["id"]]
    waiting = user_client.get(f"{CREATE}{mine['id']}/").json()
    assert waiting["concurrency"]["waiting_since"] is not None
    assert theirs["id"] not in str(waiting)
