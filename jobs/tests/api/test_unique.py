"""The jobs API's unique rules (POST /api/v1/jobs/, /bulk/, ?unique_key=): 201 for a new job, 200
with the surviving job for a duplicate, 400s naming the rule's field with nothing written."""

import pytest

from conftest import assert_error
from jobs.models import Job, JobEvent

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"


def post(client, unique, **body):
    return client.post(
        URL, {"celery_task_name": "long_running_task", "args": [1], "unique": unique, **body}, format="json"
    )


def test_a_duplicate_is_a_200_with_the_surviving_job(user_client, user):
    first = post(user_client, {"key": "sync-user-42"})
    assert first.status_code == 201
    assert (first.json()["unique_key"], first.json()["dedupe_outcome"], first.json()["duplicates"]) == (
        "sync-user-42",
        None,
        0,
    )
    again = post(user_client, {"key": "sync-user-42"})
    assert again.status_code == 200
    body = again.json()
    assert (body["id"], body["unique_key"], body["unique_policy"]) == (first.json()["id"], "sync-user-42", "reject")
    assert (body["dedupe_outcome"], body["duplicates"]) == ("existing", 1)
    line = JobEvent.objects.get(job_id=body["id"], kind="deduplicated")
    assert line.message.startswith(f"deduplicated: request by user {user.username} at ")


def test_replace_answers_200_replaced_with_the_new_arguments(user_client):
    first = post(user_client, {"key": "k", "policy": "replace"})
    again = post(user_client, {"key": "k", "policy": "replace"}, args=[9])
    assert again.status_code == 200 and again.json()["dedupe_outcome"] == "replaced"
    assert again.json()["id"] == first.json()["id"] and again.json()["args"] == [9]


def test_the_list_filters_by_unique_key(user_client):
    keyed = post(user_client, {"key": "nightly"}).json()
    post(user_client, {"key": "other"})
    user_client.post(URL, {"celery_task_name": "long_running_task"}, format="json")
    listed = user_client.get(URL, {"unique_key": "nightly"}).json()["results"]
    assert [job["id"] for job in listed] == [keyed["id"]]


def test_bulk_items_carry_their_outcome(user_client):
    items = [{"celery_task_name": "long_running_task", "unique": {"key": "b"}}] * 3
    response = user_client.post(URL + "bulk/", {"jobs": items}, format="json")
    assert response.status_code == 201
    assert [job["dedupe_outcome"] for job in response.json()] == [None, "existing", "existing"]
    assert len({job["id"] for job in response.json()}) == 1


def test_a_bulk_whose_items_are_all_duplicates_answers_200_as_a_single_duplicate(user_client):
    items = [
        {"celery_task_name": "long_running_task", "unique": {"key": "a"}},
        {"celery_task_name": "long_running_task", "unique": {"key": "b", "policy": "replace"}},
    ]
    first = user_client.post(URL + "bulk/", {"jobs": items}, format="json")
    assert first.status_code == 201
    again = user_client.post(URL + "bulk/", {"jobs": items}, format="json")
    assert again.status_code == 200  # nothing created
    assert [job["dedupe_outcome"] for job in again.json()] == ["existing", "replaced"]
    assert [job["id"] for job in again.json()] == [job["id"] for job in first.json()]
    plain = {"celery_task_name": "long_running_task"}
    mixed = user_client.post(URL + "bulk/", {"jobs": [*items, plain]}, format="json")
    assert mixed.status_code == 201  # one job created
    assert [job["dedupe_outcome"] for job in mixed.json()] == ["existing", "replaced", None]
    assert Job.objects.count() == 3


@pytest.mark.parametrize(
    ("unique", "field"),
    [
        ({"policy": "nope"}, "unique.policy"),
        ({"policy": "throttle"}, "unique.period"),
        ({"policy": "debounce", "period": 5, "max_wait": 1}, "unique.max_wait"),
        ({"key": ""}, "unique.key"),
        ({"key": "x" * 256}, "unique.key"),
        ({"period": "soon", "policy": "throttle"}, "unique.period"),
        ({"colour": "red"}, "unique.colour"),
        ("sync", "unique"),
    ],
)
def test_bad_rules_are_400_naming_the_field_and_nothing_is_written(user_client, unique, field):
    assert_error(post(user_client, unique), 400, field=field)
    assert not Job.objects.exists()


def test_a_bad_rule_in_a_bulk_item_names_the_item(user_client):
    items = [
        {"celery_task_name": "long_running_task"},
        {"celery_task_name": "long_running_task", "unique": {"policy": "x"}},
    ]
    assert_error(user_client.post(URL + "bulk/", {"jobs": items}, format="json"), 400, field="jobs[1].unique.policy")
    assert not Job.objects.exists()
