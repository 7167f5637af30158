"""The jobs REST API: /api/v1/jobs/ and the spec's /api/v1/tasks/, the task catalog.

Bad input is answered with a 4xx in the shared error shape, and then nothing is written and
nothing is sent to the broker.
"""

import base64
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import celery
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import assert_error
from jobs.catalog import catalog
from jobs.models import Job, JobEvent
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory

pytestmark = pytest.mark.django_db

PREFIXES = ["/api/v1/jobs/", "/api/v1/tasks/"]
LONG = LONG_RUNNING_TASK
NOTIFY = "jobs.tasks.high_priority_tasks.send_notification"

# The original specification's example request, byte for byte.
SPEC_BODY = {
    "name": "数据处理任务",
    "task_type": "data_processing",
    "celery_task_name": "app.tasks.common_tasks.long_running_task",
    "args": [60],
    "kwargs": {"param": "value"},
    "priority": "normal",
}


def ids(response) -> list[str]:
    return [job["id"] for job in response.json()["results"]]


def snapshot(job: Job) -> dict:
    return Job.objects.filter(id=job.id).values().get()


# --- create --------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_create_with_the_spec_example_body(user, user_client, prefix, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(prefix, SPEC_BODY, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert body["celery_task_id"] == body["id"]
    assert {key: body[key] for key in ("name", "task_type", "args", "kwargs", "priority")} == {
        key: SPEC_BODY[key] for key in ("name", "task_type", "args", "kwargs", "priority")
    }
    assert body["celery_task_name"] == LONG  # the alias resolves to the registered task
    assert (body["status"], body["progress"], body["queue"], body["owner"]) == (
        "pending",
        0,
        "default",
        user.username,
    )
    assert body["result"] is None

    job = Job.objects.get(id=body["id"])
    assert (job.owner, job.name, job.status) == (user, "数据处理任务", "pending")
    assert job.dispatched_at is not None
    assert list(job.events.values_list("kind", flat=True)) == ["created"]
    assert published == [
        {
            "id": body["id"],
            "task": LONG,
            "routing_key": "default",
            "args": [60],
            "kwargs": {"param": "value"},
        }
    ]


def test_create_takes_defaults_from_the_catalog(user, user_client):
    response = user_client.post(
        "/api/v1/jobs/",
        {
            "celery_task_name": "send_notification",
            "kwargs": {"to": [user.email], "subject": "hi"},
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert (
        body["celery_task_name"],
        body["name"],
        body["priority"],
        body["queue"],
        body["max_retries"],
    ) == (NOTIFY, "send_notification", "urgent", "high_priority", 5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "00000000-0000-0000-0000-000000000001"),
        ("celery_task_id", "00000000-0000-0000-0000-000000000001"),
        ("owner", "someone-else"),
        ("owner_id", 1),
        ("status", "succeeded"),
        ("progress", 100),
        ("result", {"forged": True}),
        ("error", ""),
        ("attempts", 3),
        ("queue", "high_priority"),
        ("created_at", "2020-01-01T00:00:00Z"),
        ("started_at", "2020-01-01T00:00:00Z"),
        ("finished_at", "2020-01-01T00:00:00Z"),
        ("dispatched_at", "2020-01-01T00:00:00Z"),
        ("cancelled_by", "someone"),
    ],
)
def test_create_refuses_fields_the_system_owns(user_client, nothing_written, field, value):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", {**SPEC_BODY, field: value}, format="json")
    body = assert_error(response, 400, code="invalid", field=field)
    assert body["message"].startswith(f"{field}: ")


@pytest.mark.parametrize(
    ("change", "code", "field", "words"),
    [
        (
            {"celery_task_name": "os.system"},
            "unknown_task",
            "celery_task_name",
            ["'os.system'", "Allowed tasks:", LONG, NOTIFY],
        ),
        ({"celery_task_name": ""}, "invalid", "celery_task_name", []),
        ({"celery_task_name": None}, "invalid", "celery_task_name", []),
        (
            {"args": ["sixty"]},
            "invalid_arguments",
            "args",
            ["args[0]", "'seconds'", "must be an integer"],
        ),
        ({"args": [60, 2]}, "invalid_arguments", "args", ["at most 1 positional"]),
        (
            {"args": [], "kwargs": {"seconds": -5}},
            "invalid_arguments",
            "kwargs",
            ["kwargs.seconds", "at least 0"],
        ),
        (
            {"kwargs": {"param": 1}},
            "invalid_arguments",
            "kwargs",
            ["'param'", "must be a string"],
        ),
        (
            {
                "celery_task_name": "send_notification",
                "args": [],
                "kwargs": {"to": ["a@example.com"], "subject": "s", "cc": "x"},
            },
            "invalid_arguments",
            "kwargs",
            ["'cc'", "parameters: to, subject, body"],
        ),
        (
            {"celery_task_name": "send_notification", "args": [], "kwargs": {}},
            "invalid_arguments",
            "args",
            ["'to'"],
        ),
        (
            {"priority": "asap"},
            "invalid",
            "priority",
            ["asap", "urgent, high, normal, low"],
        ),
        ({"args": {"seconds": 60}}, "invalid", "args", ["JSON array"]),
        ({"args": "[60]"}, "invalid", "args", ["JSON array"]),
        ({"args": None}, "invalid", "args", []),
        ({"kwargs": ["param", "value"]}, "invalid", "kwargs", ["JSON object"]),
        ({"kwargs": "param=value"}, "invalid", "kwargs", ["JSON object"]),
        ({"name": "x" * 201}, "invalid", "name", []),
        ({"max_retries": 21}, "invalid", "max_retries", []),
        ({"run_at": "tomorrow"}, "invalid", "run_at", []),
        ({"nmae": "typo"}, "invalid", "nmae", ["Unknown field"]),
        ({"status": "succeeded"}, "invalid", "status", ["read-only"]),
        ({"owner": 1}, "invalid", "owner", ["read-only"]),
        ({"progress": 100}, "invalid", "progress", ["read-only"]),
    ],
)
def test_create_refuses_bad_input_and_writes_nothing(user_client, nothing_written, change, code, field, words):
    with nothing_written():
        response = user_client.post("/api/v1/tasks/", {**SPEC_BODY, **change}, format="json")
    body = assert_error(response, 400, code=code, field=field)
    for word in words:
        assert word in body["message"]


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        (
            '{"celery_task_name": "long_running_task", "kwargs": {"label": "a\\u0000b"}}',
            "kwargs",
            ["NUL"],
        ),
        (
            '{"celery_task_name": "long_running_task", "kwargs": {"label": "\\ud800"}}',
            "kwargs",
            ["surrogate"],
        ),
        (
            '{"celery_task_name": "process_data", "args": [[{"text": "\\udfff x"}]]}',
            "args",
            ["surrogate"],
        ),
        (
            '{"celery_task_name": "process_data", "kwargs": {"records": ' + "[" * 150 + "]" * 150 + "}}",
            "kwargs",
            ["nested more than 100 levels"],
        ),
        (
            '{"celery_task_name": "process_data", "kwargs": {"records": [{"a": 1e400}]}}',
            "kwargs",
            [],
        ),
    ],
)
def test_create_refuses_values_the_database_cannot_store(user_client, nothing_written, raw, field, words):
    """Valid JSON text that PostgreSQL's jsonb (or the encoders) cannot take: a 400, not a 500."""
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", raw, content_type="application/json")
    body = assert_error(response, 400, field=field)
    for word in words:
        assert word in body["message"]


def test_create_without_a_task_name_is_refused(user_client, nothing_written):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", {"args": [1]}, format="json")
    assert_error(response, 400, field="celery_task_name")


def test_create_refuses_oversized_arguments(user_client, settings, nothing_written):
    settings.JOB_MAX_PAYLOAD_BYTES = 1000
    records = [{"value": "x" * 50} for _ in range(20)]
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", {"celery_task_name": "process_data", "args": [records]})
    body = assert_error(response, 400, code="payload_too_large", field="args")
    assert "the limit is 1000" in body["message"]
    # Just under the limit is fine.
    response = user_client.post("/api/v1/jobs/", {"celery_task_name": "process_data", "args": [records[:5]]})
    assert response.status_code == 201, response.content


@pytest.mark.parametrize(
    "raw",
    ['{"celery_task_name": "long_running_task",', "not json", '{"args": [NaN]}', ""],
)
def test_create_with_a_body_that_is_not_json_is_refused(user_client, nothing_written, raw):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", raw, content_type="application/json")
    assert_error(response, 400)


@pytest.mark.parametrize("body", [[SPEC_BODY], "text", 42])
def test_create_with_a_body_that_is_not_an_object_is_refused(user_client, nothing_written, body):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", body, format="json")
    assert_error(response, 400, code="invalid")


def test_create_with_a_form_body_is_refused(user_client, nothing_written):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", {"celery_task_name": LONG}, format="multipart")
    assert_error(response, 415, code="unsupported_media_type")


# --- idempotency ---------------------------------------------------------------------------------


def test_same_idempotency_key_and_body_return_the_same_job(user_client, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
        again = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert (Job.objects.count(), JobEvent.objects.count()) == (1, 1)
    assert [message["id"] for message in published] == [first.json()["id"]]  # sent once


def test_same_idempotency_key_with_another_body_is_refused(user_client, nothing_written):
    first = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == 201
    with nothing_written():
        response = user_client.post(
            "/api/v1/jobs/",
            {**SPEC_BODY, "args": [61]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="order-42",
        )
    assert_error(response, 422, code="idempotency_key_reused")


def test_idempotency_keys_belong_to_their_user(user_client, other_client, user, other_user):
    mine = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = other_client.post(
        "/api/v1/jobs/",
        {**SPEC_BODY, "args": [5]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert Job.objects.filter(owner=user).count() == Job.objects.filter(owner=other_user).count() == 1


@pytest.mark.parametrize("key", ["k" * 256, "k" * 300, "has space", "ключ", "tab\tkey", ""])
def test_malformed_idempotency_key_is_refused(user_client, nothing_written, key):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert_error(response, 400, code="invalid_idempotency_key", field="Idempotency-Key")


def test_longest_idempotency_key_is_accepted(user_client):
    response = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255)
    assert response.status_code == 201, response.content


def test_bulk_with_an_idempotency_key_creates_the_jobs_once(user_client, published, django_capture_on_commit_callbacks):
    body = {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [5]}]}
    with django_capture_on_commit_callbacks(execute=True):
        first = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
        again = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert [job["id"] for job in first.json()] == [job["id"] for job in again.json()]
    assert Job.objects.count() == 2 and len(published) == 2  # written and sent once


def test_bulk_with_a_reused_idempotency_key_and_another_list_is_refused(user_client, nothing_written):
    body = {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [5]}]}
    assert user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="b").status_code == 201
    for other in ({"jobs": [SPEC_BODY]}, {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [6]}]}):
        with nothing_written():
            response = user_client.post("/api/v1/jobs/bulk/", other, format="json", HTTP_IDEMPOTENCY_KEY="b")
        assert_error(response, 422, code="idempotency_key_reused")


def test_bulk_idempotency_keys_do_not_collide_with_single_creates(user_client):
    single = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="same")
    bulk = user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY]}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert (single.status_code, bulk.status_code) == (201, 201)
    assert bulk.json()[0]["id"] != single.json()["id"]


# --- bulk ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_bulk_creates_every_job_in_one_transaction(
    user, user_client, prefix, published, django_capture_on_commit_callbacks
):
    items = [
        SPEC_BODY,
        {
            "celery_task_name": "send_notification",
            "kwargs": {"to": [user.email], "subject": "s"},
        },
        {"celery_task_name": "flaky_task", "args": [0], "name": "third"},
    ]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = user_client.post(f"{prefix}bulk/", {"jobs": items}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert [job["name"] for job in body] == [
        "数据处理任务",
        "send_notification",
        "third",
    ]
    assert [job["queue"] for job in body] == [
        "default",
        "high_priority",
        "low_priority",
    ]
    assert len(callbacks) == 2  # one commit: one send of all three, one publish of all three for live streams
    assert Job.objects.filter(owner=user, status="pending", dispatched_at__isnull=False).count() == 3
    assert JobEvent.objects.filter(kind="created").count() == 3
    assert sorted(message["id"] for message in published) == sorted(job["id"] for job in body)


@pytest.mark.parametrize(
    ("jobs", "code", "field", "words"),
    [
        (
            [SPEC_BODY, {**SPEC_BODY, "priority": "asap"}],
            "invalid",
            "jobs[1].priority",
            ["jobs[1].priority", "asap"],
        ),
        (
            [SPEC_BODY, SPEC_BODY, {**SPEC_BODY, "args": ["x"]}],
            "invalid_arguments",
            "jobs[2].args",
            ["jobs[2].args[0]", "'seconds'"],
        ),
        (
            [SPEC_BODY, {"celery_task_name": "os.system"}],
            "unknown_task",
            "jobs[1].celery_task_name",
            ["jobs[1]", "Allowed tasks"],
        ),
        (
            [{**SPEC_BODY, "status": "succeeded"}],
            "invalid",
            "jobs[0].status",
            ["jobs[0].status"],
        ),
        ([SPEC_BODY, 42], "invalid", "jobs[1]", ["jobs[1]", "dictionary"]),
        ([], "invalid", "jobs", []),
        ("not a list", "invalid", "jobs", []),
    ],
)
def test_bulk_with_a_bad_item_writes_nothing(user_client, nothing_written, jobs, code, field, words):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/bulk/", {"jobs": jobs}, format="json")
    body = assert_error(response, 400, code=code, field=field)
    for word in words:
        assert word in body["message"]


def test_bulk_without_jobs_or_with_other_keys_is_refused(user_client, nothing_written):
    with nothing_written():
        assert_error(user_client.post("/api/v1/jobs/bulk/", {}, format="json"), 400, field="jobs")
        assert_error(
            user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY], "x": 1}, format="json"),
            400,
            field="x",
        )


def test_bulk_over_the_limit_is_refused(user_client, settings, nothing_written):
    settings.JOB_BULK_MAX = 3
    with nothing_written():
        response = user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY] * 4}, format="json")
    body = assert_error(response, 400, code="too_many", field="jobs")
    assert "At most 3 jobs" in body["message"]
    assert user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY] * 3}, format="json").status_code == 201


# --- list ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_owners_list_only_their_jobs_and_staff_list_all(user, other_user, user_client, staff_client, prefix):
    mine = JobFactory.create_batch(2, owner=user)
    theirs = JobFactory(owner=other_user)
    assert sorted(ids(user_client.get(prefix))) == sorted(str(job.id) for job in mine)
    assert sorted(ids(staff_client.get(prefix))) == sorted(str(job.id) for job in [*mine, theirs])


def test_list_is_newest_first_with_the_job_fields(user, user_client):
    old = JobFactory(owner=user, created_at=timezone.now() - timedelta(hours=1))
    new = JobFactory(owner=user, running=True, progress=40, progress_meta={"message": "halfway"})
    response = user_client.get("/api/v1/jobs/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}  # cursor pages: no count
    assert ids(response) == [str(new.id), str(old.id)]
    first = body["results"][0]
    assert (
        first["status"],
        first["progress"],
        first["progress_message"],
        first["owner"],
    ) == ("running", 40, "halfway", user.username)


def test_list_filters(user, user_client):
    now = timezone.now()
    pending = JobFactory(
        owner=user,
        name="nightly report",
        task_type="reports",
        created_at=now - timedelta(days=3),
    )
    failed = JobFactory(
        owner=user,
        failed=True,
        priority="high",
        task_type="reports",
        created_at=now - timedelta(days=2),
    )
    running = JobFactory(
        owner=user,
        running=True,
        priority="low",
        celery_task_name="jobs.tasks.common_tasks.process_data",
        created_at=now - timedelta(days=1),
    )
    done = JobFactory(owner=user, succeeded=True, name="Weekly REPORT", created_at=now)

    def listed(**params) -> set[str]:
        response = user_client.get("/api/v1/jobs/", params)
        assert response.status_code == 200, response.content
        return set(ids(response))

    assert listed(status="pending") == {str(pending.id)}
    assert listed(status=["pending", "failed"]) == {str(pending.id), str(failed.id)}
    assert listed(priority="high") == {str(failed.id)}
    assert listed(priority=["high", "low"]) == {str(failed.id), str(running.id)}
    assert listed(task="jobs.tasks.common_tasks.process_data") == {str(running.id)}
    assert listed(task="data_processing") == {str(running.id)}  # an alias
    assert listed(task="app.tasks.common_tasks.long_running_task") == {
        str(pending.id),
        str(failed.id),
        str(done.id),
    }
    assert listed(task="no.such.task") == set()
    assert listed(task_type="reports") == {str(pending.id), str(failed.id)}
    assert listed(created_after=(now - timedelta(days=2, hours=1)).isoformat()) == {
        str(failed.id),
        str(running.id),
        str(done.id),
    }
    assert listed(created_before=(now - timedelta(days=1, hours=1)).isoformat()) == {
        str(pending.id),
        str(failed.id),
    }
    assert listed(
        created_after=(now - timedelta(days=2, hours=1)).isoformat(),
        created_before=(now - timedelta(hours=1)).isoformat(),
    ) == {str(failed.id), str(running.id)}
    assert listed(search="report") == {str(pending.id), str(done.id)}
    assert listed(search="report", status="succeeded") == {str(done.id)}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
        ({"status": "done"}, "status"),
        ({"priority": "asap"}, "priority"),
    ],
)
def test_list_with_a_malformed_filter_is_refused(user_client, params, field):
    assert_error(user_client.get("/api/v1/jobs/", params), 400, code="invalid", field=field)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Python reads offsets up to ±23:59, PostgreSQL only ±15:59: compared in UTC they all work.
        ("2020-01-01T00:00:00-16:05", "2020-01-01T16:05:00+00:00"),
        ("2020-01-01T00:00:00+23:59", "2019-12-31T00:01:00+00:00"),
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_time_filters_with_any_utc_offset_compare_in_utc(user, user_client, value, expected):
    before = JobFactory(owner=user, created_at=datetime.fromisoformat(expected) - timedelta(seconds=1))
    after = JobFactory(owner=user, created_at=datetime.fromisoformat(expected) + timedelta(seconds=1))
    assert ids(user_client.get("/api/v1/jobs/", {"created_after": value})) == [str(after.id)]
    assert ids(user_client.get("/api/v1/jobs/", {"created_before": value})) == [str(before.id)]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_time_filters_beyond_the_calendar_are_refused(user_client, field, value):
    error = assert_error(user_client.get("/api/v1/jobs/", {field: value}), 400, code="invalid", field=field)
    assert "out of range" in error["message"]


@pytest.mark.parametrize("param", ["search", "task", "task_type", "owner", "status", "cursor", "ordering"])
def test_a_nul_character_in_a_query_parameter_is_refused(staff_client, param):
    error = assert_error(staff_client.get("/api/v1/jobs/", {param: "a\x00b"}), 400, code="invalid", field=param)
    assert "NUL" in error["message"]


def test_a_nul_character_in_an_admin_filter_is_refused(admin_client):
    response = admin_client.get("/admin/jobs/job/", {"q": "a\x00b"})
    assert_error(response, 400, code="invalid", field="q")


def test_owner_filter_is_for_staff(user, other_user, user_client, staff_client):
    mine, theirs = JobFactory(owner=user), JobFactory(owner=other_user)
    assert set(ids(staff_client.get("/api/v1/jobs/", {"owner": other_user.username}))) == {str(theirs.id)}
    assert set(ids(staff_client.get("/api/v1/jobs/", {"owner": str(user.id)}))) == {str(mine.id)}
    # A plain user's list stays their own, whatever owner they ask for.
    assert ids(user_client.get("/api/v1/jobs/", {"owner": other_user.username})) == []
    assert ids(user_client.get("/api/v1/jobs/", {"owner": str(user.id)})) == [str(mine.id)]


@pytest.mark.parametrize("owner", ["²", "٣", "99999999999999999999999", "nobody"])
def test_owner_filter_with_odd_values_finds_nothing(staff_client, user, owner):
    JobFactory(owner=user)
    response = staff_client.get("/api/v1/jobs/", {"owner": owner})
    assert response.status_code == 200, response.content
    assert ids(response) == []


def test_a_list_naming_only_paging_parameters_builds_no_filterset(user, user_client, monkeypatch):
    """The filter backend skips django-filter's FilterSet (a fifth of a list page's CPU) when the
    request names nothing but the paginator's parameters; with any other parameter it runs."""
    from jobs.filters import JobFilter

    built = []
    original = JobFilter.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("data"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(JobFilter, "__init__", counting)
    JobFactory.create_batch(3, owner=user)
    first = user_client.get("/api/v1/jobs/", {"page_size": 2})
    assert first.status_code == 200 and len(ids(first)) == 2
    assert user_client.get(first.json()["next"]).status_code == 200
    assert user_client.get("/api/v1/jobs/").status_code == 200
    assert built == []
    assert ids(user_client.get("/api/v1/jobs/", {"status": "failed"})) == []
    assert user_client.get("/api/v1/jobs/", {"no_such_filter": "x"}).status_code == 200
    assert len(built) == 2


def test_list_ordering(user, user_client):
    now = timezone.now()
    jobs = [JobFactory(owner=user, created_at=now - timedelta(minutes=m)) for m in (3, 1, 2)]
    oldest_first = [str(job.id) for job in sorted(jobs, key=lambda job: job.created_at)]
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "created_at"})) == oldest_first
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "-created_at"})) == oldest_first[::-1]
    # Orderings a cursor cannot page through are ignored (the default order is kept).
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "status"})) == oldest_first[::-1]


def walk(client, url: str) -> tuple[list[str], list[int]]:
    """Follow the next links from ``url``: every id seen, and each page's size."""
    seen, sizes = [], []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += ids(response)
        sizes.append(len(response.json()["results"]))
        url = response.json()["next"]
        assert len(sizes) < 100, "the next links never end"
    return seen, sizes


def test_cursor_pages_follow_next_links(user, user_client):
    now = timezone.now()
    jobs = [JobFactory(owner=user, created_at=now - timedelta(seconds=n)) for n in range(23)]
    seen, sizes = walk(user_client, "/api/v1/jobs/?page_size=10")
    assert seen == [str(job.id) for job in jobs]  # newest first, none twice, none missing
    assert sizes == [10, 10, 3]

    page = user_client.get("/api/v1/jobs/", {"page_size": 10}).json()
    back = user_client.get(user_client.get(page["next"]).json()["previous"]).json()
    assert [job["id"] for job in back["results"]] == seen[:10]


@pytest.mark.parametrize(
    "position",
    ["0001-01-01T00:00:00+01:00", "not a time", "2020-01-01\x00"],
)
def test_a_forged_cursor_is_a_400_naming_the_cursor(user, user_client, position):
    JobFactory(owner=user)
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    error = assert_error(user_client.get("/api/v1/jobs/", {"cursor": cursor}), 400, code="invalid", field="cursor")
    assert "cursor" in error["message"]


@pytest.mark.parametrize("cursor", ["garbage", "bz1hYmM="])  # o=abc
def test_a_malformed_cursor_is_a_400(user_client, cursor):
    assert_error(user_client.get("/api/v1/jobs/", {"cursor": cursor}), 400, code="invalid", field="cursor")


def test_a_cursor_position_with_an_offset_postgresql_refuses_compares_in_utc(user, user_client):
    older = JobFactory(owner=user, created_at=datetime.fromisoformat("2020-01-01T16:04:00+00:00"))
    JobFactory(owner=user, created_at=datetime.fromisoformat("2020-01-01T16:06:00+00:00"))
    cursor = base64.b64encode(urlencode({"p": "2020-01-01T00:00:00-16:05"}).encode()).decode()
    assert ids(user_client.get("/api/v1/jobs/", {"cursor": cursor})) == [str(older.id)]


def test_cursor_pages_are_stable_for_jobs_created_together(user, user_client):
    """Bulk-created jobs share ``created_at``: the id breaks the tie, so every row shows once."""
    created = user_client.post(
        "/api/v1/jobs/bulk/",
        {"jobs": [{"celery_task_name": LONG, "args": [n]} for n in range(30)]},
    )
    assert created.status_code == 201
    assert Job.objects.values("created_at").distinct().count() == 1
    seen, sizes = walk(user_client, "/api/v1/jobs/?page_size=7")
    assert sizes == [7, 7, 7, 7, 2]
    assert seen == sorted((job["id"] for job in created.json()), reverse=True)
    seen, _ = walk(user_client, "/api/v1/jobs/?page_size=7&ordering=created_at")
    assert seen == sorted(job["id"] for job in created.json())


def test_page_size_is_capped(user, user_client):
    Job.objects.bulk_create(JobFactory.build_batch(205, owner=user))
    assert len(ids(user_client.get("/api/v1/jobs/", {"page_size": 1000}))) == 200
    assert len(ids(user_client.get("/api/v1/jobs/"))) == 50


def test_list_runs_no_count_query(user, user_client):
    JobFactory.create_batch(3, owner=user)
    with CaptureQueriesContext(connection) as queries:
        response = user_client.get("/api/v1/jobs/", {"page_size": 2, "status": "pending"})
    assert response.status_code == 200
    assert response.json()["next"]
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


# --- detail, events ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_detail_of_an_own_job(user, user_client, prefix):
    job = JobFactory(owner=user, failed=True)
    for url in (f"{prefix}{job.id}/", f"{prefix}{job.id}", f"{prefix}{job.id.hex}/"):
        response = user_client.get(url)
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        assert (body["id"], body["status"], body["error"]) == (
            str(job.id),
            "failed",
            "RuntimeError: boom",
        )
        assert body["traceback"].startswith("Traceback")


def test_a_users_failed_job_shows_no_server_paths_staff_see_them(user, user_client, staff_client):
    project_file = settings.BASE_DIR / "jobs" / "tasks" / "common_tasks.py"
    library_file = Path(celery.__file__).parent / "app" / "trace.py"
    traceback = (
        "Traceback (most recent call last):\n"
        f'  File "{library_file}", line 453, in trace_task\n'
        f'  File "{project_file}", line 40, in process_data\n'
        '  File "/opt/elsewhere/vendor/lib.py", line 7, in parse\n'
        f"FileNotFoundError: [Errno 2] No such file or directory: '{settings.BASE_DIR}/var/in.csv'\n"
    )
    job = JobFactory(owner=user, failed=True, traceback=traceback, error=traceback.splitlines()[-1])
    JobEvent.objects.create(job=job, kind="failed", data={"traceback": traceback, "attempt": 1}, message=job.error)
    server = [str(settings.BASE_DIR), str(library_file.parent), "/opt/elsewhere"]
    mine = user_client.get(f"/api/v1/jobs/{job.id}/").json()
    events = user_client.get(f"/api/v1/jobs/{job.id}/events/").json()
    shown = mine["traceback"] + mine["error"] + json.dumps(events)
    assert not [path for path in server if path in shown], shown
    assert 'File "jobs/tasks/common_tasks.py", line 40' in mine["traceback"]
    assert 'File "lib.py", line 7' in mine["traceback"] and "<python>/" in mine["traceback"]
    assert events[0]["data"]["attempt"] == 1
    # Staff (operators) see the full text.
    assert staff_client.get(f"/api/v1/jobs/{job.id}/").json()["traceback"] == traceback
    assert staff_client.get(f"/api/v1/jobs/{job.id}/events/").json()[0]["data"]["traceback"] == traceback


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000/",
        "/api/v1/jobs/------------------------------------/",
        "/api/v1/jobs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-/",
        "/api/v1/jobs/not-a-job/",
    ],
)
def test_detail_of_an_unknown_or_malformed_id_is_404(user_client, path):
    assert_error(user_client.get(path), 404, code="not_found")


def test_events_show_the_timeline(user, user_client):
    created = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json").json()
    assert user_client.post(f"/api/v1/tasks/{created['id']}/cancel").status_code == 200
    for prefix in PREFIXES:
        response = user_client.get(f"{prefix}{created['id']}/events/")
        assert response.status_code == 200
        events = response.json()
        assert [(e["kind"], e["from_status"], e["to_status"], e["actor"]) for e in events] == [
            ("created", "", "pending", user.username),
            ("revoked", "pending", "revoked", user.username),
        ]


# --- other users' jobs ---------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(
    ("method", "suffix", "status"),
    [
        ("get", "", "pending"),
        ("get", "events/", "pending"),
        ("post", "cancel/", "pending"),
        ("post", "cancel", "running"),
        ("post", "retry/", "failed"),
        ("delete", "", "succeeded"),
    ],
)
def test_another_users_job_is_not_found(
    other_user, user_client, staff_user, staff_client, prefix, method, suffix, status
):
    # Staff acting on someone else's job also need the job permissions (see the tests at the end).
    staff_user.user_permissions.add(*Permission.objects.filter(codename__in=["change_job", "delete_job"]))
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)
    response = getattr(user_client, method)(f"{prefix}{job.id}/{suffix}")
    assert_error(response, 404, code="not_found")
    assert snapshot(job) == before
    assert not JobEvent.objects.filter(job=job).exists()
    # Staff may see and act on it.
    assert getattr(staff_client, method)(f"{prefix}{job.id}/{suffix}").status_code in (
        200,
        204,
    )


# --- cancel, retry, delete -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", PREFIXES)
def test_cancel_a_pending_job(user, user_client, prefix):
    job = JobFactory(owner=user)
    response = user_client.post(f"{prefix}{job.id}/cancel/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["cancelled_by"]) == ("revoked", user.username)
    assert body["cancel_requested_at"] and body["finished_at"]
    assert Job.objects.get(id=job.id).status == "revoked"


def test_cancel_with_the_spec_path_without_trailing_slash(user, user_client):
    created = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json").json()
    response = user_client.post(f"/api/v1/tasks/{created['id']}/cancel")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "revoked"
    assert user_client.get(f"/api/v1/tasks/{created['id']}").json()["status"] == "revoked"


def test_cancel_a_running_job_requests_a_stop(user, user_client):
    job = JobFactory(owner=user, running=True)
    response = user_client.post(f"/api/v1/jobs/{job.id}/cancel/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "running"
    assert body["cancel_requested_at"] is not None
    assert body["finished_at"] is None
    again = assert_error(user_client.post(f"/api/v1/jobs/{job.id}/cancel/"), 409, code="cancel_pending")
    assert "already being cancelled" in again["message"]
    assert JobEvent.objects.filter(job=job).count() == 1


@pytest.mark.parametrize("status", ["succeeded", "failed", "revoked"])
def test_cancel_a_finished_job_is_a_conflict(user, user_client, status):
    job = JobFactory(owner=user, **{status: True})
    before = snapshot(job)
    body = assert_error(user_client.post(f"/api/v1/jobs/{job.id}/cancel/"), 409, code="invalid_state")
    assert status in body["message"]
    assert snapshot(job) == before


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("status", ["failed", "revoked"])
def test_retry_a_failed_or_revoked_job(
    user, user_client, prefix, status, published, django_capture_on_commit_callbacks
):
    job = JobFactory(owner=user, **{status: True})
    with django_capture_on_commit_callbacks(execute=True):
        response = user_client.post(f"{prefix}{job.id}/retry/")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["status"], body["attempts"], body["error"]) == (
        str(job.id),
        "pending",
        1,
        "",
    )
    assert [m["id"] for m in published] == [str(job.id)]
    events = user_client.get(f"{prefix}{job.id}/events/").json()
    assert [e["kind"] for e in events] == ["retried"]
    assert events[0]["data"]["previous_error"] == job.error


@pytest.mark.parametrize("status", ["pending", "running", "succeeded"])
def test_retry_of_a_job_that_did_not_fail_is_a_conflict(user, user_client, status, nothing_written):
    job = JobFactory(owner=user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)
    with nothing_written():
        assert_error(user_client.post(f"/api/v1/jobs/{job.id}/retry/"), 409, code="invalid_state")
    assert snapshot(job) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_delete_a_finished_job(user, user_client, prefix):
    job = JobFactory(owner=user, succeeded=True)
    JobEvent.objects.create(job=job, kind="created")
    response = user_client.delete(f"{prefix}{job.id}/")
    assert response.status_code == 204
    assert not Job.objects.filter(id=job.id).exists()
    assert not JobEvent.objects.filter(job_id=job.id).exists()
    assert_error(user_client.get(f"{prefix}{job.id}/"), 404)
    assert_error(user_client.delete(f"{prefix}{job.id}/"), 404)


@pytest.mark.parametrize("status", ["pending", "running"])
def test_delete_an_active_job_says_to_cancel_first(user, user_client, status):
    job = JobFactory(owner=user, **({status: True} if status != "pending" else {}))
    body = assert_error(user_client.delete(f"/api/v1/jobs/{job.id}"), 409, code="job_active")
    assert "cancel it first" in body["message"]
    assert Job.objects.filter(id=job.id).exists()


# --- catalog, authentication ---------------------------------------------------------------------


def test_task_catalog_lists_the_builtin_tasks(user_client):
    response = user_client.get("/api/v1/task-catalog/")
    assert response.status_code == 200
    entries = {entry["name"]: entry for entry in response.json()}
    assert set(entries) == {entry.name for entry in catalog.entries()}
    long_running = entries[LONG]
    assert "app.tasks.common_tasks.long_running_task" in long_running["aliases"]
    assert long_running["parameters"]["properties"]["seconds"]["type"] == "integer"
    assert long_running["default_priority"] == "normal"
    assert entries[NOTIFY]["parameters"]["required"] == ["to", "subject"]
    assert entries[NOTIFY]["queue"] == "high_priority"


JOB_ID = "00000000-0000-0000-0000-000000000000"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/jobs/"),
        ("post", "/api/v1/jobs/"),
        ("post", "/api/v1/jobs/bulk/"),
        ("get", f"/api/v1/jobs/{JOB_ID}/"),
        ("delete", f"/api/v1/jobs/{JOB_ID}/"),
        ("post", f"/api/v1/jobs/{JOB_ID}/cancel/"),
        ("post", f"/api/v1/jobs/{JOB_ID}/retry/"),
        ("get", f"/api/v1/jobs/{JOB_ID}/events/"),
        ("get", "/api/v1/tasks/"),
        ("post", "/api/v1/tasks/"),
        ("get", f"/api/v1/tasks/{JOB_ID}"),
        ("post", f"/api/v1/tasks/{JOB_ID}/cancel"),
        ("get", "/api/v1/task-catalog/"),
    ],
)
def test_unauthenticated_requests_are_refused(api_client, user, nothing_written, method, path):
    job = JobFactory(owner=user, id=uuid.UUID(JOB_ID), failed=True)
    before = snapshot(job)
    with nothing_written():
        response = getattr(api_client, method)(path, SPEC_BODY if method == "post" else None, format="json")
    assert_error(response, 401, code="not_authenticated")
    assert snapshot(job) == before


# --- query counts --------------------------------------------------------------------------------

# Measured: SAVEPOINT, the quota check (lock the owner, then one SELECT counting), the job with its
# created line (one statement: WITH … INSERT … INSERT), RELEASE SAVEPOINT (the test's transaction
# turns the service's atomic block into a savepoint). A change here is a regression to look at.
CREATE_QUERIES = 5


def test_create_uses_a_fixed_number_of_queries(user_client, django_assert_num_queries):
    with django_assert_num_queries(CREATE_QUERIES):
        response = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json")
    assert response.status_code == 201
    # With an Idempotency-Key: one lookup more; a replay is that lookup and its owner's username.
    with django_assert_num_queries(CREATE_QUERIES + 1):
        assert user_client.post("/api/v1/jobs/", SPEC_BODY, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    with django_assert_num_queries(2):
        assert user_client.post("/api/v1/jobs/", SPEC_BODY, HTTP_IDEMPOTENCY_KEY="k").status_code == 201


def count_queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_listing_10_or_100_jobs_costs_the_same_queries(user, staff_user, staff_client):
    Job.objects.bulk_create(JobFactory.build_batch(100, owner=user, cancelled_by=staff_user))
    small = count_queries(staff_client, "/api/v1/jobs/?page_size=10")
    large = count_queries(staff_client, "/api/v1/jobs/?page_size=100")
    assert small == large == 1  # one SELECT with owner and cancelled_by joined


def test_bulk_create_of_5_or_200_jobs_costs_the_same_queries(user_client):
    def bulk(count: int) -> int:
        items = [{"celery_task_name": LONG, "args": [n]} for n in range(count)]
        with CaptureQueriesContext(connection) as queries:
            response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items}, format="json")
        assert response.status_code == 201
        return len(queries)

    # On-commit sends do not run inside the test's transaction, so only the writes are counted.
    assert bulk(5) == bulk(200) == 6  # SAVEPOINT, quota lock + count, INSERT jobs, INSERT events, RELEASE SAVEPOINT
    assert Job.objects.count() == 205


def test_absurdly_nested_json_body_is_a_400_not_a_500(user_client, nothing_written):
    body = '{"celery_task_name": "long_running_task", "kwargs": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    with nothing_written():
        response = user_client.generic("POST", "/api/v1/jobs/", body, content_type="application/json")
    assert_error(response, 400, code="parse_error")


# --- acting on other users' jobs needs the job permissions -------------------------------------


def grant(user, *codenames: str) -> None:
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename__in=codenames))


OPERATIONS = [
    ("post", "cancel/", "pending", "jobs.change_job", 200),
    ("post", "cancel/", "running", "jobs.change_job", 200),
    ("post", "retry/", "failed", "jobs.change_job", 200),
    ("delete", "", "succeeded", "jobs.delete_job", 204),
]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_view_only_staff_cannot_act_on_other_users_jobs(
    other_user, staff_user, staff_client, nothing_written, prefix, method, suffix, status, permission, success
):
    """Staff see every job, but cancel, retry and delete someone else's job only with the
    permission the admin asks for too: "change" to cancel or retry, "delete" to delete."""
    grant(staff_user, "view_job")
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)

    with nothing_written():
        body = assert_error(getattr(staff_client, method)(f"{prefix}{job.id}/{suffix}"), 403, code="permission_denied")

    assert permission in body["message"]
    assert snapshot(job) == before
    # The detail stays visible.
    assert staff_client.get(f"{prefix}{job.id}/").status_code == 200


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_staff_with_the_permission_act_on_other_users_jobs(
    other_user, staff_user, staff_client, method, suffix, status, permission, success
):
    grant(staff_user, permission.split(".")[1])
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))

    assert getattr(staff_client, method)(f"/api/v1/jobs/{job.id}/{suffix}").status_code == success


def test_the_change_permission_does_not_allow_deleting(other_user, staff_user, staff_client):
    grant(staff_user, "view_job", "change_job")
    job = JobFactory(owner=other_user, succeeded=True)

    body = assert_error(staff_client.delete(f"/api/v1/jobs/{job.id}/"), 403, code="permission_denied")

    assert "jobs.delete_job" in body["message"]
    assert Job.objects.filter(id=job.id).exists()


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_owners_act_on_their_own_jobs_without_any_permission(
    staff_user, staff_client, method, suffix, status, permission, success
):
    job = JobFactory(owner=staff_user, **({status: True} if status != "pending" else {}))

    assert not staff_user.get_all_permissions()
    assert getattr(staff_client, method)(f"/api/v1/jobs/{job.id}/{suffix}").status_code == success


@pytest.mark.parametrize(("method", "suffix", "status", "permission", "success"), OPERATIONS)
def test_permissions_do_not_let_non_staff_see_other_users_jobs(
    user, other_user, user_client, method, suffix, status, permission, success
):
    grant(user, "view_job", "change_job", "delete_job")
    job = JobFactory(owner=other_user, **({status: True} if status != "pending" else {}))
    before = snapshot(job)

    assert_error(getattr(user_client, method)(f"/api/v1/jobs/{job.id}/{suffix}"), 404, code="not_found")

    assert snapshot(job) == before


@pytest.mark.parametrize(
    "params",
    [
        {"created_at__gte": "2020-01-01T00:00:00-16:05"},
        {"created_at__lt": "2020-01-01 00:00:00+23:59"},
        {"created_at__gte": "0001-01-01T00:00:00+01:00"},
        {"created_at__day": "99999999999999999999"},
        {"created_at__year": "-1"},
        {"created_at__gte": "not a time"},
    ],
)
@pytest.mark.parametrize("page", ["/admin/jobs/job/", "/admin/jobs/jobevent/"])
def test_admin_filters_with_extreme_or_malformed_times_never_fail(admin_client, params, page):
    """An operator's hand-edited URL answers a page (Django's "?e=1" for a lookup it cannot read), never a 500."""
    JobFactory()
    if page.endswith("jobevent/"):
        params = {key.replace("created_at", "at"): value for key, value in params.items()}
    response = admin_client.get(page, params, follow=True)
    assert response.status_code == 200, response.content[:500]
