"""Creating a job through the API (POST /api/v1/jobs/ and the spec's /api/v1/tasks/): the spec's
example body, defaults from the catalog, and the statements a create costs.

Bad input is answered with a 4xx in the shared error shape, and then nothing is written and
nothing is sent to the broker.
"""

import pytest

from conftest import assert_error
from jobs.models import Job
from jobs.tests.factories import LONG_RUNNING_TASK, PREFIXES, SPEC_BODY, kinds

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK
NOTIFY = "jobs.tasks.high_priority_tasks.send_notification"


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
    assert kinds(job) == ["created"]
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


def test_absurdly_nested_json_body_is_a_400_not_a_500(user_client, nothing_written):
    body = '{"celery_task_name": "long_running_task", "kwargs": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    with nothing_written():
        response = user_client.generic("POST", "/api/v1/jobs/", body, content_type="application/json")
    assert_error(response, 400, code="parse_error")


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
