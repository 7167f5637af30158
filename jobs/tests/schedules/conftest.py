"""The schedules API's tests share a body, its URLs, and the check that a refusal wrote nothing."""

from contextlib import contextmanager

import pytest
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from jobs.models import Job, JobSchedule

URL = "/api/v1/schedules/"
BODY = {
    "name": "nightly export",
    "task": "app.tasks.common_tasks.long_running_task",
    "kwargs": {"seconds": 5},
    "interval": {"every": 1, "period": "minutes"},  # as often as a plain user may
}


def url(schedule_id, action: str = "") -> str:
    return f"{URL}{schedule_id}/{action + '/' if action else ''}"


def rows() -> tuple[int, ...]:
    models = (PeriodicTask, JobSchedule, IntervalSchedule, CrontabSchedule, Job)
    return tuple(model.objects.count() for model in models)


@pytest.fixture
def nothing_written(published):
    @contextmanager
    def check():
        before = rows()
        yield
        assert rows() == before
        assert published == []

    return check


@pytest.fixture
def make_schedule(user_client):
    def make(client=None, **changes) -> dict:
        response = (client or user_client).post(URL, {**BODY, "name": f"schedule {rows()[0]}", **changes})
        assert response.status_code == 201, response.content
        return response.json()

    return make
