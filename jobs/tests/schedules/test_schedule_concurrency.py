"""A schedule's jobs may carry a concurrency key (README "Concurrency keys"): stored with the
schedule, given to each job it fires, changed or cleared by PATCH; bad values are 400s naming the
field with nothing written."""

import pytest
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobSchedule
from jobs.schedules.firing import job_schedule_fire

from .conftest import BODY, URL, url

pytestmark = pytest.mark.django_db


def test_a_schedules_jobs_carry_its_key_and_patch_changes_or_clears_it(user_client):
    response = user_client.post(URL, {**BODY, "concurrency": {"key": "export", "limit": 1}}, format="json")
    assert response.status_code == 201, response.content
    schedule = response.json()
    assert schedule["concurrency"] == {"key": "export", "limit": 1, "waiting_since": None}
    assert JobSchedule.objects.filter(concurrency_key="export", concurrency_limit=1).count() == 1

    fired = job_schedule_fire(periodic_task_id=schedule["id"], last_run_at=timezone.now())
    job = Job.objects.get(id=fired.job.id)
    assert (job.concurrency_key, job.concurrency_limit) == ("export", 1)

    changed = user_client.patch(url(schedule["id"]), {"concurrency": {"key": "export", "limit": 2}}, format="json")
    assert changed.json()["concurrency"]["limit"] == 2
    untouched = user_client.patch(url(schedule["id"]), {"description": "d"}, format="json")
    assert untouched.json()["concurrency"]["limit"] == 2
    cleared = user_client.patch(url(schedule["id"]), {"concurrency": None}, format="json")
    assert cleared.json()["concurrency"] is None


@pytest.mark.parametrize(
    ("concurrency", "field"),
    [({"key": "", "limit": 1}, "concurrency.key"), ({"key": "k", "limit": 0}, "concurrency.limit"), (3, "concurrency")],
)
def test_a_bad_rule_is_a_400_naming_the_field_and_writes_nothing(user_client, nothing_written, concurrency, field):
    with nothing_written():
        response = user_client.post(URL, {**BODY, "concurrency": concurrency}, format="json")
    assert_error(response, 400, field=field)
