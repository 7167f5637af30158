"""Issue 20: the ordinary lines of a job's current run (created, started, succeeded) are derived
from the job's row (``jobs.timeline``), not inserted; every other line stays a real row, and a
derived line about to stop being true (its columns overwritten) is written as a real row first."""

import pytest
from django.utils import timezone

from jobs.models import Job, JobEvent
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.services.operations import job_retry
from jobs.timeline import job_lines

pytestmark = pytest.mark.django_db(transaction=True)

LONG = "app.tasks.common_tasks.long_running_task"
WORKER = "celery@bench:7"


def iso(at) -> str:
    return timezone.localtime(at).isoformat().replace("+00:00", "Z")


def expected_timeline(job: Job, username: str) -> list[dict]:
    """What the API answered for an ordinary create -> start -> succeed before issue 20 (read from
    main at c9138d4), but the ids: the derived lines' ids are -1, -2, -3 (created, started, succeeded)."""
    return [
        {
            "id": -1,
            "at": iso(job.created_at),
            "kind": "created",
            "from_status": "",
            "to_status": "pending",
            "actor": username,
            "actor_label": f"user {username}",
            "message": "Created on queue default with priority normal.",
            "data": {},
        },
        {
            "id": -2,
            "at": iso(job.started_at),
            "kind": "started",
            "from_status": "pending",
            "to_status": "running",
            "actor": None,
            "actor_label": f"worker {WORKER}",
            "message": "",
            "data": {},
        },
        {
            "id": -3,
            "at": iso(job.finished_at),
            "kind": "succeeded",
            "from_status": "running",
            "to_status": "succeeded",
            "actor": None,
            "actor_label": f"worker {WORKER}",
            "message": "",
            "data": {},
        },
    ]


def test_an_ordinary_job_writes_no_timeline_row_and_the_api_shows_the_same_timeline(user, user_client):
    job = job_create(owner=user, celery_task_name=LONG)
    job_start(job_id=job.id, worker=WORKER)
    job_succeed(job_id=job.id, attempts=0, result={"ok": True}, worker=WORKER)
    job.refresh_from_db()
    answer = user_client.get(f"/api/v1/jobs/{job.id}/events/").json()
    expected = expected_timeline(job, user.username)
    assert [{**line, "id": None} for line in answer] == [{**line, "id": None} for line in expected]
    assert JobEvent.objects.filter(job_id=job.id).count() == 0
    assert answer == expected


def test_a_retry_writes_the_first_runs_lines_before_the_second_start(user):
    job = job_create(owner=user, celery_task_name=LONG, max_retries=1)
    job_start(job_id=job.id, worker=WORKER)
    first = Job.objects.get(id=job.id).started_at
    job_fail(job_id=job.id, attempts=0, error="boom", worker=WORKER)
    real = list(JobEvent.objects.filter(job_id=job.id).order_by("at", "id").values_list("kind", "at"))
    assert [kind for kind, _ in real] == ["created", "started", "retry_scheduled"]
    assert real[1][1] == first
    Job.objects.filter(id=job.id).update(run_at=None)
    job_start(job_id=job.id, worker="celery@other:1", attempts=1)
    job_succeed(job_id=job.id, attempts=1, worker="celery@other:1")
    lines = job_lines(job=Job.objects.get(id=job.id))
    assert [(line.kind, line.actor_label) for line in lines] == [
        ("created", f"user {user.username}"),
        ("started", f"worker {WORKER}"),
        ("retry_scheduled", f"worker {WORKER}"),
        ("started", "worker celery@other:1"),
        ("succeeded", "worker celery@other:1"),
    ]
    assert [line.id < 0 for line in lines] == [False, False, False, True, True]


def test_a_failure_keeps_its_real_line_and_derives_the_rest(user):
    job = job_create(owner=user, celery_task_name=LONG)
    job_start(job_id=job.id, worker=WORKER)
    job_fail(job_id=job.id, attempts=0, error="boom", worker=WORKER)
    assert list(JobEvent.objects.filter(job_id=job.id).values_list("kind", flat=True)) == ["failed"]
    lines = job_lines(job=Job.objects.get(id=job.id))
    assert [line.kind for line in lines] == ["created", "started", "failed"]


def test_an_operator_retry_with_a_new_priority_keeps_the_created_line_as_it_was(user, staff_user):
    job = job_create(owner=user, celery_task_name=LONG)
    job_start(job_id=job.id, worker=WORKER)
    job_fail(job_id=job.id, attempts=0, error="boom", worker=WORKER)
    job_retry(job_id=job.id, by=staff_user, priority="high")
    lines = job_lines(job=Job.objects.get(id=job.id))
    assert [line.kind for line in lines] == ["created", "started", "failed", "retried"]
    assert lines[0].message == "Created on queue default with priority normal."
    assert all(line.id > 0 for line in lines)


def test_a_bulk_created_line_is_derived_too(user):
    from jobs.services.creation import job_create_bulk

    jobs = job_create_bulk(owner=user, items=[{"celery_task_name": LONG}])
    assert JobEvent.objects.filter(job_id=jobs[0].id).count() == 0
    assert Job.objects.get(id=jobs[0].id).created_via == "bulk"
    (line,) = job_lines(job=jobs[0])
    assert (line.kind, line.message) == ("created", "Created (bulk) on queue default with priority normal.")


def test_a_workflow_steps_created_line_stays_real(user):
    from jobs.workflows.services import workflow_create

    flow = workflow_create(owner=user, name="etl", steps=[{"id": "a", "task": LONG}])
    step = Job.objects.get(workflow=flow)
    assert list(JobEvent.objects.filter(job_id=step.id).values_list("kind", "message")) == [
        ("created", "Created as step of workflow 'etl' on queue default with priority normal.")
    ]
    assert [line.kind for line in job_lines(job=step)] == ["created"]


def test_a_bulk_replacing_a_holders_priority_keeps_its_created_line_as_it_was(user):
    """A bulk's duplicates are written in one statement (``deduplicate_many``): a replace that changes
    the holder's priority and queue stores its derived created line first, as a single create does."""
    from jobs.services.creation import job_create_bulk

    rule = {"key": "nightly", "policy": "replace"}
    holder = job_create(owner=user, celery_task_name=LONG, unique=rule)
    job_create_bulk(owner=user, items=[{"celery_task_name": LONG, "unique": rule, "priority": "high"}])
    job = Job.objects.get(id=holder.id)
    assert (job.priority, job.duplicates) == ("high", 1)
    lines = job_lines(job=job)
    assert [line.kind for line in lines] == ["created", "deduplicated"]
    assert lines[0].message == "Created on queue default with priority normal." and lines[0].id > 0
