"""Deadlines through the API and the command line: ``expires_at`` / ``expires_in`` on a create, a bulk
item and ``manage.py enqueue_job``; bad ones are a 400 (exit status 2) naming the field, nothing
written; ``expired`` in the status filter and the OpenAPI document."""

import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobStatus
from jobs.tests.factories import SPEC_BODY, ids, make

pytestmark = pytest.mark.django_db


def iso(seconds: float) -> str:
    return (timezone.now() + timedelta(seconds=seconds)).isoformat()


def test_create_with_expires_in_answers_the_deadline(user_client):
    response = user_client.post("/api/v1/jobs/", {**SPEC_BODY, "expires_in": 300}, format="json")
    assert response.status_code == 201, response.content
    job = Job.objects.get(id=response.json()["id"])
    assert abs((job.expires_at - job.created_at).total_seconds() - 300) < 1
    assert response.json()["expires_at"] is not None


def test_create_with_expires_at(user_client):
    deadline = (timezone.now() + timedelta(hours=1)).replace(microsecond=0)
    response = user_client.post("/api/v1/jobs/", {**SPEC_BODY, "expires_at": deadline.isoformat()}, format="json")
    assert response.status_code == 201, response.content
    assert Job.objects.get(id=response.json()["id"]).expires_at == deadline


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        # Days ahead, not seconds: the cases are built when the suite is collected, maybe half an hour
        # before they run.
        ({"expires_at": iso(86400), "expires_in": 60}, "expires_in", "not both"),
        ({"expires_at": iso(-60)}, "expires_at", "in the past"),
        ({"expires_at": iso(86400), "run_at": iso(2 * 86400)}, "expires_at", "not after run_at"),
        ({"expires_in": 10, "run_at": iso(2 * 86400)}, "expires_in", "not after run_at"),
        ({"expires_in": 0}, "expires_in", "greater than or equal to 1"),
        ({"expires_in": "soon"}, "expires_in", "integer"),
        ({"expires_at": "tomorrow"}, "expires_at", "Datetime has wrong format"),
    ],
)
def test_a_bad_deadline_is_a_400_naming_the_field_and_nothing_is_written(
    user_client, nothing_written, change, field, words
):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", {**SPEC_BODY, **change}, format="json")
    body = assert_error(response, 400, field=field)
    assert words in body["message"] or any(words in message for message in body["fields"][field])


def test_a_bad_deadline_in_a_bulk_item_names_the_item(user_client, nothing_written):
    items = [{**SPEC_BODY, "expires_in": 60}, {**SPEC_BODY, "expires_at": iso(-5)}]
    with nothing_written():
        response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items}, format="json")
    assert_error(response, 400, field="jobs[1].expires_at")


def test_a_bulk_gives_each_item_its_deadline(user_client):
    items = [{**SPEC_BODY, "expires_in": 60}, SPEC_BODY]
    response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items}, format="json")
    assert response.status_code == 201, response.content
    deadlines = [job["expires_at"] for job in response.json()["jobs"]] if "jobs" in response.json() else None
    rows = Job.objects.order_by("created_at")
    assert [row.expires_at is not None for row in rows] == [True, False], deadlines


def test_expired_jobs_are_one_filter_away(user, user_client):
    expired, failed = make("expired", owner=user), make("failed", owner=user)
    response = user_client.get("/api/v1/jobs/", {"status": "expired"})
    assert response.status_code == 200 and ids(response) == [str(expired.id)]
    assert str(failed.id) not in ids(response)


def test_the_openapi_document_names_expired_and_the_deadline_fields(api_client):
    schema = api_client.get("/api/schema/", {"format": "json"}).json()
    text = str(schema)
    assert "'expired'" in text
    create = schema["components"]["schemas"]["JobCreateRequest"]["properties"]
    assert {"expires_at", "expires_in"} <= set(create)


# --- manage.py enqueue_job -----------------------------------------------------------------------


def enqueue(*args: str) -> str:
    out = io.StringIO()
    call_command("enqueue_job", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_enqueue_job_takes_a_deadline(user):
    job = Job.objects.get(
        id=enqueue("long_running_task", "--args", "[1]", "--user", user.username, "--expires-in", "90")
    )
    assert abs((job.expires_at - job.created_at).total_seconds() - 90) < 1
    deadline = (timezone.now() + timedelta(hours=2)).replace(microsecond=0)
    job = Job.objects.get(
        id=enqueue("long_running_task", "--user", user.username, "--expires-at", deadline.isoformat())
    )
    assert job.expires_at == deadline


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--expires-in", "0"), "--expires-in: "),
        (("--expires-in", "many"), "--expires-in: "),
        (("--expires-at", "yesterday"), "--expires-at: "),
        (("--expires-at", iso(-10)), "--expires-at: "),
        (("--expires-at", iso(86400), "--expires-in", "60"), "--expires-in: Give expires_at or expires_in, not both."),
    ],
)
def test_enqueue_job_refuses_a_bad_deadline_naming_the_option(user, nothing_written, args, words):
    with nothing_written(), pytest.raises(CommandError) as caught:
        enqueue("long_running_task", "--user", user.username, *args)
    assert caught.value.returncode == 2 and str(caught.value).startswith(words), caught.value


def test_a_waited_job_that_expired_exits_1(user, monkeypatch):
    job = make("expired", owner=user)
    from jobs.management.commands import enqueue_job

    monkeypatch.setattr(enqueue_job.Command, "create", lambda self, **kwargs: job)
    monkeypatch.setattr(enqueue_job.Command, "follow", lambda self, job, **kwargs: Job.objects.get(id=job.id))
    with pytest.raises(CommandError) as caught:
        enqueue("long_running_task", "--user", user.username, "--wait")
    assert caught.value.returncode == 1 and "expired" in str(caught.value)
    assert JobStatus.EXPIRED == Job.objects.get(id=job.id).status
