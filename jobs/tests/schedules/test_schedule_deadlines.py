"""Deadlines of scheduled jobs: a schedule stores ``expires_in``; each job it fires gets its own
deadline, its firing time plus ``expires_in``. A bad value is a 400 naming the field, nothing written."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobSchedule
from jobs.schedules.firing import job_schedule_fire

from .conftest import BODY, URL, url

pytestmark = pytest.mark.django_db


def test_each_firing_gets_its_own_deadline(make_schedule, user_client):
    schedule = make_schedule(expires_in=120)
    assert schedule["expires_in"] == 120
    assert JobSchedule.objects.get(pk=schedule["id"]).expires_in == 120
    jobs = []
    for minutes in (2, 3):
        before = timezone.now()
        fired = job_schedule_fire(
            periodic_task_id=schedule["id"], last_run_at=timezone.now() - timedelta(minutes=minutes)
        )
        job = Job.objects.get(id=fired.job.id)
        assert before + timedelta(seconds=120) <= job.expires_at <= timezone.now() + timedelta(seconds=120)
        jobs.append(job)
    assert jobs[0].expires_at < jobs[1].expires_at
    run_now = user_client.post(url(schedule["id"], "run-now"))
    assert run_now.status_code == 201 and run_now.json()["expires_at"] is not None


def test_a_schedule_without_expires_in_fires_jobs_without_a_deadline(make_schedule):
    schedule = make_schedule()
    assert schedule["expires_in"] is None
    fired = job_schedule_fire(periodic_task_id=schedule["id"], last_run_at=timezone.now() - timedelta(minutes=2))
    assert Job.objects.get(id=fired.job.id).expires_at is None


def test_patch_sets_and_clears_expires_in(make_schedule, user_client):
    schedule = make_schedule()
    response = user_client.patch(url(schedule["id"]), {"expires_in": 30}, format="json")
    assert response.status_code == 200 and response.json()["expires_in"] == 30
    response = user_client.patch(url(schedule["id"]), {"expires_in": None}, format="json")
    assert response.status_code == 200 and response.json()["expires_in"] is None
    response = user_client.patch(url(schedule["id"]), {"priority": "low"}, format="json")  # kept when not given
    assert JobSchedule.objects.get(pk=schedule["id"]).expires_in is None


@pytest.mark.parametrize("value", [0, -1, "soon", 10**12, True])
def test_a_bad_expires_in_is_a_400_naming_it_and_writes_nothing(user_client, nothing_written, value):
    with nothing_written():
        assert_error(user_client.post(URL, {**BODY, "expires_in": value}, format="json"), 400, field="expires_in")


def test_a_bad_expires_in_in_a_patch_changes_nothing(make_schedule, user_client):
    schedule = make_schedule(expires_in=60)
    assert_error(user_client.patch(url(schedule["id"]), {"expires_in": 0}, format="json"), 400, field="expires_in")
    assert JobSchedule.objects.get(pk=schedule["id"]).expires_in == 60
