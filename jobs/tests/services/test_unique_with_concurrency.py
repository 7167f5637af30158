"""Both halves of issue 21 on one job: a uniqueness rule (whether a create makes a job) and a
concurrency key (when a job may start) are independent. A job holding its unique key may wait for
its concurrency key; its finish releases both, each by its own rule; keep_latest's follow-up keeps
its finished job's concurrency key. The request, bulk and schedule paths carry both."""

import pytest
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobStatus
from jobs.schedules.firing import job_schedule_fire
from jobs.schedules.services import job_schedule_create, job_schedule_update
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_start, job_succeed
from jobs.tests.factories import LONG_RUNNING_TASK

pytestmark = pytest.mark.django_db

TENANT = {"key": "tenant-7", "limit": 1}


def create(user, key, policy="reject", seconds=1, concurrency=TENANT):
    return job_create(
        owner=user,
        celery_task_name=LONG_RUNNING_TASK,
        args=[seconds],
        unique={"key": key, "policy": policy},
        concurrency=concurrency,
    )


def test_a_job_with_both_keys_dedupes_waits_for_its_turn_and_its_finish_frees_both(
    user, published, django_capture_on_commit_callbacks
):
    first, second = create(user, "sync-1"), create(user, "sync-2")
    assert (create(user, "sync-1").id, create(user, "sync-1").dedupe_outcome) == (first.id, "existing")
    started = job_start(job_id=first.id, worker="w:1")
    assert started is not None
    assert job_start(job_id=second.id, worker="w:2") is None  # tenant-7 is at its limit: second waits

    waiting = Job.objects.get(id=second.id)
    assert waiting.status == JobStatus.PENDING and waiting.concurrency_waiting_since is not None
    assert waiting.unique_held  # a waiting job still holds its unique key (reject: pending or running)
    assert create(user, "sync-2").id == second.id

    published.clear()
    with django_capture_on_commit_callbacks(execute=True):
        job_succeed(job_id=first.id, attempts=started.attempts, result=1, worker="w:1")
    done = Job.objects.get(id=first.id)
    assert (done.status, done.unique_held) == (JobStatus.SUCCEEDED, False)
    assert str(second.id) in [message["id"] for message in published]  # its concurrency key freed
    assert create(user, "sync-1").id != first.id  # its unique key freed

    assert job_start(job_id=second.id, worker="w:2") is not None
    row = Job.objects.get(id=second.id)
    assert (row.concurrency_waiting_since, row.unique_held) == (None, True)


def test_keep_latests_follow_up_keeps_the_finished_jobs_concurrency_key(user):
    first = create(user, "latest", "keep_latest", concurrency={"key": "tenant-9", "limit": 2})
    started = job_start(job_id=first.id, worker="w:1")
    assert create(user, "latest", "keep_latest", seconds=5).dedupe_outcome == "follow_up_queued"
    job_succeed(job_id=first.id, attempts=started.attempts, result=None, worker="w:1")
    follow_up = Job.objects.exclude(id=first.id).get()
    assert (follow_up.args, follow_up.unique_key, follow_up.unique_held) == ([5], "latest", True)
    assert (follow_up.concurrency_key, follow_up.concurrency_limit) == ("tenant-9", 2)


def test_replace_keeps_the_holders_concurrency_key(user):
    first = create(user, "r", "replace")
    again = create(user, "r", "replace", seconds=3, concurrency={"key": "tenant-8", "limit": 4})
    assert (again.id, again.dedupe_outcome) == (first.id, "replaced")
    row = Job.objects.get(id=first.id)
    assert (row.args, row.concurrency_key, row.concurrency_limit) == ([3], "tenant-7", 1)


def test_a_bulk_carries_both(user):
    item = {"celery_task_name": LONG_RUNNING_TASK, "unique": {"key": "b"}, "concurrency": TENANT}
    jobs = job_create_bulk(owner=user, items=[item, item, {**item, "unique": {"key": "c"}}])
    assert [job.dedupe_outcome for job in jobs] == [None, "existing", None]
    assert {(job.unique_key, job.concurrency_key) for job in Job.objects.all()} == {
        ("b", "tenant-7"),
        ("c", "tenant-7"),
    }


def test_the_api_takes_and_answers_both_and_a_bad_half_writes_nothing(user_client, published):
    body = {"celery_task_name": "long_running_task", "args": [1], "unique": {"key": "k"}, "concurrency": TENANT}
    first = user_client.post("/api/v1/jobs/", body, format="json")
    assert first.status_code == 201, first.content
    assert (first.json()["unique_key"], first.json()["concurrency"]["key"]) == ("k", "tenant-7")
    again = user_client.post("/api/v1/jobs/", body, format="json")
    assert again.status_code == 200, again.content
    assert (again.json()["id"], again.json()["dedupe_outcome"]) == (first.json()["id"], "existing")
    bad = user_client.post(
        "/api/v1/jobs/", {**body, "unique": {"key": "m"}, "concurrency": {"key": "t", "limit": 0}}, format="json"
    )
    assert_error(bad, 400, field="concurrency.limit")
    bad = user_client.post("/api/v1/jobs/", {**body, "unique": {"policy": "nope"}}, format="json")
    assert_error(bad, 400, field="unique.policy")
    assert Job.objects.count() == 1


def test_a_schedule_keeps_both_rules_and_a_patch_of_one_leaves_the_other(user):
    hourly = {"every": 1, "period": "hours"}
    schedule = job_schedule_create(
        owner=user, name="s", task=LONG_RUNNING_TASK, interval=hourly, unique={"policy": "reject"}, concurrency=TENANT
    )
    fired = job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=timezone.now())
    job = Job.objects.get(id=fired.job.id)
    assert (job.unique_policy, job.concurrency_key, job.concurrency_limit) == ("reject", "tenant-7", 1)

    job_schedule_update(periodic_task_id=schedule.pk, unique=None)
    row = schedule.job_schedule
    row.refresh_from_db()
    assert (row.unique, row.concurrency_key) == (None, "tenant-7")
    job_schedule_update(periodic_task_id=schedule.pk, unique={"policy": "reject"}, concurrency=None)
    row.refresh_from_db()
    assert (row.unique, row.concurrency_key, row.concurrency_limit) == ({"policy": "reject"}, None, None)
