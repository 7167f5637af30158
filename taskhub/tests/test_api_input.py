"""Input the published schema refuses is refused by the API too (a 400 naming it), and every error's
``fields`` is the documented ``{name: [message, ...]}``: what schemathesis found (issue 9)."""

import base64
from urllib.parse import urlencode

import pytest

from conftest import assert_error
from jobs.models import Job
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory

pytestmark = pytest.mark.django_db

LISTS = ["/api/v1/jobs/", "/api/v1/tasks/", "/api/v1/schedules/", "/api/v1/users/"]


def assert_flat_fields(body: dict) -> None:
    """``fields`` maps names to lists of strings, as the Error schema says."""
    for name, messages in body.get("fields", {}).items():
        assert isinstance(name, str), body
        assert isinstance(messages, list) and messages, body
        assert all(isinstance(message, str) for message in messages), body


@pytest.fixture
def listed(user, staff_user):
    """Something on every list, so that a bad page size cannot pass for an empty page."""
    JobFactory(owner=staff_user)
    job_schedule_create(owner=staff_user, name="s", task="long_running_task", interval={"every": 1, "period": "hours"})


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("page_size", ["null", "", "abc", "0", "-1", "1.5", "２"])
def test_a_page_size_that_is_no_positive_integer_is_refused(staff_client, listed, url, page_size):
    error = assert_error(staff_client.get(url, {"page_size": page_size}), 400, code="invalid", field="page_size")
    assert "page_size" in error["message"]


@pytest.mark.parametrize("url", LISTS)
def test_a_page_size_over_the_maximum_counts_as_the_maximum(staff_client, listed, url):
    response = staff_client.get(url, {"page_size": "100000"})
    assert response.status_code == 200, response.content
    assert response.json()["results"]


@pytest.mark.parametrize("url", LISTS)
@pytest.mark.parametrize("cursor", ["garbage", "bz1hYmM="])  # o=abc
def test_a_malformed_cursor_is_a_400_on_every_list(staff_client, listed, url, cursor):
    """DRF answers 404 "Invalid cursor", which no list documented."""
    assert_error(staff_client.get(url, {"cursor": cursor}), 400, code="invalid", field="cursor")


@pytest.mark.parametrize("url", ["/api/v1/schedules/", "/api/v1/users/"])
@pytest.mark.parametrize("position", ["abc", "None", "1.5"])
def test_a_forged_cursor_position_is_a_400_not_a_500(staff_client, listed, url, position):
    """Lists ordered by id compared the position with the id column as it came: a 500."""
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    assert_error(staff_client.get(url, {"cursor": cursor}), 400, code="invalid", field="cursor")


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/v1/users/me/", {"last_name": 123}, "last_name"),
        ("/api/v1/users/me/", {"username": 0}, "username"),
        ("/api/v1/users/me/", {"first_name": True}, "first_name"),
        ("/api/v1/jobs/", {"celery_task_name": LONG_RUNNING_TASK, "name": 5}, "name"),
        ("/api/v1/jobs/", {"celery_task_name": LONG_RUNNING_TASK, "max_retries": "3"}, "max_retries"),
        ("/api/v1/jobs/", {"celery_task_name": LONG_RUNNING_TASK, "max_retries": True}, "max_retries"),
        ("/api/v1/jobs/", {"celery_task_name": LONG_RUNNING_TASK, "task_type": 1.5}, "task_type"),
        ("/api/v1/auth/token/", {"username": 1, "password": "x"}, "username"),
    ],
)
def test_a_value_of_another_json_type_is_refused(user_client, url, body, field):
    """DRF turns 123 into "123" and "3" into 3; the schema says string and integer."""
    method = user_client.patch if url.endswith("/me/") else user_client.post
    body = assert_error(method(url, body, format="json"), 400, code="invalid", field=field)
    assert field in body["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"interval": {"every": "2", "period": "hours"}}, "interval.every"),
        ({"enabled": "yes"}, "enabled"),
        ({"one_off": 1}, "one_off"),
    ],
)
def test_a_schedule_value_of_another_json_type_is_refused(user_client, body, field):
    body = {"name": "n", "task": "long_running_task", "interval": {"every": 1, "period": "hours"}, **body}
    assert_error(user_client.post("/api/v1/schedules/", body, format="json"), 400, code="invalid", field=field)


@pytest.mark.parametrize(
    ("jobs", "field"),
    [
        ([None], "jobs[0]"),
        ([{"celery_task_name": LONG_RUNNING_TASK}, None], "jobs[1]"),
        ([1], "jobs[0]"),
        ([{"celery_task_name": LONG_RUNNING_TASK, "name": None}], "jobs[0].name"),
    ],
)
def test_bulk_errors_are_flat_lists_of_messages(user_client, jobs, field):
    """``{"jobs": [null]}`` answered ``fields: {"jobs": {"0": [...]}}``: a nested object, not the lists
    the Error schema documents."""
    response = user_client.post("/api/v1/jobs/bulk/", {"jobs": jobs}, format="json")
    assert not Job.objects.exists()
    body = assert_error(response, 400, code="invalid", field=field)
    assert_flat_fields(body)
    assert body["message"].startswith(f"{field}: ")


def test_nested_errors_anywhere_are_flat_lists_of_messages(user_client):
    """The error handler flattens whatever a serializer nests (lists of objects, objects of lists)."""
    response = user_client.post(
        "/api/v1/schedules/", {"name": "n", "task": "long_running_task", "crontab": {"minute": None}}, format="json"
    )
    body = assert_error(response, 400, code="invalid", field="crontab.minute")
    assert_flat_fields(body)


def test_the_bulk_idempotency_key_format_is_checked(user_client):
    body = {"jobs": [{"celery_task_name": LONG_RUNNING_TASK}]}
    response = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="a b")
    assert not Job.objects.exists()
    assert_error(response, 400, code="invalid_idempotency_key", field="Idempotency-Key")


@pytest.mark.parametrize("value", ["0.5", "1e3", "１", "null", ""])
def test_the_schedule_filter_takes_whole_numbers_only(user_client, value):
    """A NumberFilter took 0.5 (and matched nothing); the schema says integer."""
    assert_error(user_client.get("/api/v1/jobs/", {"schedule": value}), 400, code="invalid", field="schedule")


@pytest.mark.parametrize("field", ["is_staff", "is_active"])
@pytest.mark.parametrize("value", ["null", "yes", "2", "unknown", ""])
def test_the_users_boolean_filters_take_true_or_false_only(staff_client, field, value):
    """``is_staff=null`` listed everyone: the select widget read any unknown value as no filter."""
    assert_error(staff_client.get("/api/v1/users/", {field: value}), 400, code="invalid", field=field)


def test_the_users_boolean_filters_filter(staff_client, staff_user, user):
    listed = staff_client.get("/api/v1/users/", {"is_staff": "false"}).json()["results"]
    assert [row["id"] for row in listed] == [user.id]
    listed = staff_client.get("/api/v1/users/", {"is_staff": "true", "is_active": "true"}).json()["results"]
    assert [row["id"] for row in listed] == [staff_user.id]


@pytest.mark.parametrize("field", ["created_after", "created_before"])
@pytest.mark.parametrize("value", ["", "yesterday"])
def test_the_time_filters_take_a_date_time_only(user_client, field, value):
    """``created_before=`` (empty) listed every job: the schema says date-time, and "" is none."""
    assert_error(user_client.get("/api/v1/jobs/", {field: value}), 400, code="invalid", field=field)
