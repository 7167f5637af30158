"""The job admin's live parts through Django's test client: the staff-only progress view the
list and the job page ask (on each stream event, or polling), messages that are true at every
point of a job's life, attempts counted from 1, the job page's parts (header, fields, timeline,
buttons), and the live-progress streams the pages follow."""

import html
import re
import uuid
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync
from django.test import AsyncClient, Client
from django.utils import timezone

from jobs.admin import job_state as live
from jobs.models import JobEvent, JobEventKind, JobStatus
from taskhub.testing.admin import CHANGELIST, PROGRESS, TASK, change_url, make_job


def test_progress_view_returns_the_live_state(operator_client, owner):
    running = make_job(
        owner,
        JobStatus.RUNNING,
        progress=70,
        progress_meta={"message": "epoch 7/10", "epoch": 7},
    )
    stopping = make_job(owner, JobStatus.RUNNING, progress=20, cancel_requested_at=timezone.now())
    done = make_job(owner, JobStatus.SUCCEEDED, progress=100)
    missing = uuid.uuid4()

    response = operator_client.get(PROGRESS, {"ids": f"{running.pk},{stopping.pk}, {done.pk},{missing}"})

    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    jobs = {job["id"]: job for job in response.json()["jobs"]}
    assert set(jobs) == {str(running.pk), str(stopping.pk), str(done.pk)}
    state = jobs[str(running.pk)]
    assert {key: state[key] for key in ("id", "status", "badge", "label", "progress", "message", "active")} == {
        "id": str(running.pk),
        "status": "running",
        "badge": "running",
        "label": "Running",
        "progress": 70,
        "message": "epoch 7/10",
        "active": True,
    }
    assert (state["attempt"], state["attempt_title"]) == ("1/1", "attempt 1 of 1 (no automatic retries)")
    assert state["run"].startswith("running ") and state["run"].endswith("· test")
    assert "title" not in state and "timeline" not in state  # the page's parts only with detail=1
    assert jobs[str(stopping.pk)]["badge"] == "cancelling" and jobs[str(stopping.pk)]["active"] is True
    assert jobs[str(done.pk)]["active"] is False and jobs[str(done.pk)]["label"] == "Succeeded"

    assert operator_client.get(PROGRESS).json() == {"jobs": []}


def test_progress_view_refuses_bad_ids(operator_client):
    response = operator_client.get(PROGRESS, {"ids": "not-a-uuid"})
    assert response.status_code == 400 and response.json()["code"] == "invalid"

    too_many = ",".join(str(uuid.uuid4()) for _ in range(live.PROGRESS_MAX_IDS + 1))
    response = operator_client.get(PROGRESS, {"ids": too_many})
    assert response.status_code == 400 and response.json()["code"] == "invalid"


@pytest.mark.parametrize("is_logged_in", [False, True])
def test_progress_view_refuses_non_staff(owner, is_logged_in):
    job = make_job(owner, JobStatus.RUNNING, progress=10)
    client = Client()
    if is_logged_in:
        client.force_login(owner)  # owns the job, but is not staff

    response = client.get(PROGRESS, {"ids": str(job.pk)})

    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"


def test_progress_messages_are_true_at_the_end_of_a_run_and_while_waiting_to_retry(operator_client, owner):
    """The message a task wrote last is not shown once it is no longer true: a succeeded job is
    done (not "0/2 records"), a job waiting for its automatic retry says so, counted from 1."""
    done = make_job(
        owner,
        JobStatus.SUCCEEDED,
        progress=100,
        progress_meta={"message": "0/2 records"},
        started_at=timezone.now() - timedelta(seconds=3),
    )
    retry_at = timezone.now() + timedelta(seconds=40)
    waiting = make_job(
        owner,
        JobStatus.PENDING,
        progress=50,
        progress_meta={"message": "attempt 1"},
        attempts=1,
        max_retries=3,
        run_at=retry_at,
        error="RuntimeError: transient failure (attempt 1)",
    )
    failed = make_job(
        owner,
        JobStatus.FAILED,
        progress=35,
        progress_meta={"message": "7/20 rows"},
        error="ValueError: bad row 7\nsecond line",
        attempts=3,
        max_retries=3,
    )
    cancelled = make_job(owner, JobStatus.REVOKED, progress_meta={"message": "0/10s"}, started_at=None)

    response = operator_client.get(
        PROGRESS, {"ids": ",".join(str(job.pk) for job in (done, waiting, failed, cancelled))}
    )
    jobs = {job["id"]: job for job in response.json()["jobs"]}

    assert jobs[str(done.pk)]["message"] == "done in 3.0s"
    at = timezone.localtime(retry_at).strftime("%H:%M:%S")
    assert jobs[str(waiting.pk)]["message"] == f"retry backoff: attempt 2 of 4, until {at}"
    assert jobs[str(waiting.pk)]["attempt"] == "2/4"
    assert jobs[str(failed.pk)]["message"] == "failed: ValueError: bad row 7"
    assert jobs[str(failed.pk)]["attempt"] == "4/4"
    assert jobs[str(cancelled.pk)]["message"] == "cancelled before it started"
    # The list shows the same messages.
    html = operator_client.get(CHANGELIST).content.decode()
    assert "0/2 records" not in html and "attempt 1<" not in html
    assert f"retry backoff: attempt 2 of 4, until {at}" in html
    assert ">2/4<" in html


def test_progress_view_with_detail_returns_the_job_pages_parts(operator_client, owner):
    """The job page is live as a whole: header, times, outcome, timeline and which buttons apply."""
    job = make_job(
        owner,
        JobStatus.SUCCEEDED,
        name="nightly export",
        progress=100,
        result={"rows": 1200},
        worker="celery@w1",
    )
    JobEvent.objects.create(
        job=job, kind=JobEventKind.SUCCEEDED, from_status="running", to_status="succeeded", actor_label="worker w1"
    )

    response = operator_client.get(PROGRESS, {"ids": str(job.pk), "detail": "1"})

    assert response.status_code == 200
    (state,) = response.json()["jobs"]
    assert state["title"] == "nightly export (succeeded)"
    assert "&quot;rows&quot;: 1200" in state["fields"]["result_json"]
    assert state["fields"]["finished_at_when"] not in ("", "-")
    assert state["fields"]["worker"] == "celery@w1"
    assert "running → succeeded" in state["timeline"] and "worker w1" in state["timeline"]
    assert (state["can_cancel"], state["can_retry"]) == (False, False)

    too_many = ",".join(str(uuid.uuid4()) for _ in range(live.PROGRESS_MAX_DETAIL_IDS + 1))
    response = operator_client.get(PROGRESS, {"ids": too_many, "detail": "1"})
    assert response.status_code == 400 and response.json()["code"] == "invalid"


def test_job_page_marks_its_live_parts(operator_client, owner):
    """What job_live.js updates in place: the header, the fields, the timeline and the buttons."""
    job = make_job(owner, JobStatus.RUNNING, name="busy")

    html = operator_client.get(change_url(job)).content.decode()

    assert f'data-job-page="{job.pk}"' in html
    assert f'<h2 data-job-id="{job.pk}" data-job-part="title">busy (running)</h2>' in html
    assert 'data-job-part="timeline"' in html
    assert 'data-job-operation="cancel"' in html and 'data-job-operation="retry"' in html
    # The Retry button is there for when the job fails, hidden until then.
    assert 'data-job-operation="retry" hidden' in html


@pytest.mark.django_db(transaction=True)  # a stream reads on its own threads
def test_the_pages_name_the_streams_they_follow_and_the_session_opens_them(operator, owner):
    """The job page follows its job's stream; the list follows the list stream narrowed by the list's
    priority and task filters, not its status filter (a job leaving that status must still reach the
    page). EventSource sends the admin's session cookie: the streams accept it."""
    job = make_job(owner, JobStatus.RUNNING)
    client = AsyncClient()
    client.force_login(operator)

    page = async_to_sync(client.get)(change_url(job)).content.decode()
    assert f'data-job-page="{job.pk}" data-stream-url="/api/v1/jobs/{job.pk}/stream"' in page
    assert page.index("/static/jobs/stream.js") < page.index("/static/jobs/admin/job_live.js")

    filters = {"status__exact": "running", "priority__exact": "normal", "celery_task_name": TASK}
    listing = async_to_sync(client.get)(CHANGELIST, filters).content.decode()
    [url] = re.findall(r'data-job-list data-stream-url="([^"]+)"', listing)
    assert html.unescape(url) == f"/api/v1/jobs/stream?priority=normal&task={TASK}"
    assert 'data-stream-url="/api/v1/jobs/stream"' in async_to_sync(client.get)(CHANGELIST).content.decode()

    async def first_state(path: str) -> str:
        response = await client.get(path)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/event-stream")
        content = aiter(response.streaming_content)
        try:
            chunks = [await anext(content) for _ in range(2)]  # "retry:", then the first state
        finally:
            await content.aclose()
        return b"".join(chunks).decode()

    assert f'"id":"{job.pk}"' in async_to_sync(first_state)(f"/api/v1/jobs/{job.pk}/stream")
    assert f'"id":"{job.pk}"' in async_to_sync(first_state)(html.unescape(url))
