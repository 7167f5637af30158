"""POST /api/v1/jobs/bulk/: every job in one transaction or none; a bad item, an empty list or
too many jobs refused with nothing written; the same statements for 5 jobs or 200."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conftest import assert_error
from jobs.models import Job
from jobs.tests.factories import LONG_RUNNING_TASK, PREFIXES, SPEC_BODY, kinds

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


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
    assert [kinds(job) for job in Job.objects.filter(owner=user)] == [["created"]] * 3
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


def test_bulk_create_of_5_or_200_jobs_costs_the_same_queries(user_client):
    def bulk(count: int) -> int:
        items = [{"celery_task_name": LONG, "args": [n]} for n in range(count)]
        with CaptureQueriesContext(connection) as queries:
            response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items}, format="json")
        assert response.status_code == 201
        return len(queries)

    # On-commit sends do not run inside the test's transaction, so only the writes are counted.
    # SAVEPOINT, quota lock + count, INSERT jobs, RELEASE SAVEPOINT (their created lines: derived, issue 20)
    assert bulk(5) == bulk(200) == 5
    assert Job.objects.count() == 205


def test_bulk_validation_stops_at_the_first_bad_item(user_client, nothing_written):
    """A refused request counts against no quota: its cost is bounded by its first bad item."""
    bad = {**SPEC_BODY, "priority": "asap"}
    with nothing_written():
        response = user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY, bad, SPEC_BODY, bad]}, format="json")
    body = assert_error(response, 400, code="invalid", field="jobs[1].priority")
    assert list(body["fields"]) == ["jobs[1].priority"]


def test_a_bulk_body_over_the_bulk_byte_limit_is_refused_before_its_items_are_read(user_client, nothing_written):
    """Default 1 MiB; the items here are all bad, and are never looked at."""
    item = {"celery_task_name": "process_data", "priority": "asap", "kwargs": {"records": ["x" * 1000] * 5}}
    jobs = [item] * 220  # ~1.1 MB
    with nothing_written():
        response = user_client.post("/api/v1/jobs/bulk/", {"jobs": jobs}, format="json")
    body = assert_error(response, 413, code="payload_too_large", field="jobs")
    assert "1048576 bytes" in body["message"]
    smaller = {**item, "priority": "normal"}
    assert user_client.post("/api/v1/jobs/bulk/", {"jobs": [smaller] * 180}, format="json").status_code == 201


def test_a_bulks_jobs_list_in_request_order(user_client):
    """Experience (b): a bulk's jobs get created_at one microsecond apart in request order, so the
    list (newest first) shows them last item first, every time and across cursor pages, and
    ``ordering=created_at`` in request order."""
    names = [f"item-{index:02}" for index in range(20)]
    response = user_client.post(
        "/api/v1/jobs/bulk/", {"jobs": [{**SPEC_BODY, "name": n} for n in names]}, format="json"
    )
    assert response.status_code == 201, response.content

    def listed(**params):
        seen, url, query = [], "/api/v1/jobs/", {"page_size": 7, **params}
        while url:
            page = user_client.get(url, query).json()
            seen += [job["name"] for job in page["results"]]
            url, query = page["next"], None
        return seen

    assert listed() == names[::-1]
    assert listed(ordering="created_at") == names
