"""A schedule's uniqueness rule (JobSchedule.unique): each firing's job carries it, so a firing
while the last job is still pending or running (reject) creates nothing."""

from datetime import UTC, datetime, timedelta

import pytest

from conftest import assert_error
from jobs.models import Job, JobStatus
from jobs.schedules.firing import job_schedule_fire
from jobs.schedules.services import job_schedule_create, job_schedule_update
from jobs.services.execution import job_start, job_succeed
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.errors import InvalidInput

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 10, 0, 0, tzinfo=UTC)
HOURLY = {"every": 1, "period": "hours"}


def fire(schedule, hours: int):
    return job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=T0 + timedelta(hours=hours))


def test_a_firing_is_skipped_while_the_last_job_runs(user):
    schedule = job_schedule_create(
        owner=user, name="sync", task=LONG_RUNNING_TASK, interval=HOURLY, unique={"policy": "reject"}
    )
    first = fire(schedule, 0)
    assert first.job is not None and not first.skipped
    job_start(job_id=first.job.id, worker="w")
    second = fire(schedule, 1)
    assert (second.job.id, second.skipped) == (first.job.id, "deduplicated (existing)")
    job_succeed(job_id=first.job.id, attempts=0, worker="w")
    third = fire(schedule, 2)
    assert not third.skipped and third.job.id != first.job.id
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 1


def test_a_bad_rule_is_refused_naming_the_field(user):
    with pytest.raises(InvalidInput) as error:
        job_schedule_create(owner=user, name="s", task=LONG_RUNNING_TASK, interval=HOURLY, unique={"policy": "x"})
    assert "unique.policy" in error.value.fields
    schedule = job_schedule_create(owner=user, name="s", task=LONG_RUNNING_TASK, interval=HOURLY)
    with pytest.raises(InvalidInput):
        job_schedule_update(periodic_task_id=schedule.pk, unique={"policy": "throttle"})


def test_the_api_takes_and_shows_the_rule(user_client):
    body = {"name": "n", "task": "long_running_task", "interval": HOURLY, "unique": {"policy": "reject"}}
    response = user_client.post("/api/v1/schedules/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["unique"] == {"policy": "reject"}
    bad = user_client.post("/api/v1/schedules/", {**body, "name": "m", "unique": {"policy": "nope"}}, format="json")
    assert_error(bad, 400, field="unique.policy")
