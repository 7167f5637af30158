"""A duplicate creates nothing, so an owner at their quota still gets it (issue 21): a 200 with the
surviving job, not a 429; a bulk whose over-quota items are all duplicates is accepted. A request that
would create a job over the quota is still a 429 with nothing written. The quotas as they ship
(JOB_QUOTA_MAX_ACTIVE / JOB_QUOTA_PER_MINUTE = 1000), filled with factory rows."""

from datetime import timedelta

import pytest
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import LONG_RUNNING_TASK, JobFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"
BULK = URL + "bulk/"


def fill(owner, n: int, *, age: timedelta) -> None:
    created = timezone.now() - age
    Job.objects.bulk_create(JobFactory.build_batch(n, owner=owner, status=JobStatus.PENDING, created_at=created))


def keyed(key: str, policy: str = "reject", seconds: int = 1) -> dict:
    return {"celery_task_name": LONG_RUNNING_TASK, "args": [seconds], "unique": {"key": key, "policy": policy}}


def written():
    return Job.objects.count(), JobEvent.objects.count(), sorted(Job.objects.values_list("duplicates", flat=True))


@pytest.mark.parametrize(
    ("age", "code"),
    [(timedelta(minutes=5), "quota_active_jobs"), (timedelta(seconds=5), "quota_per_minute")],
    ids=["active", "per_minute"],
)
def test_a_duplicate_at_the_quota_is_a_200_and_a_new_job_a_429(user, user_client, age, code):
    fill(user, 999, age=age)
    first = user_client.post(URL, keyed("sync-42"), format="json")
    assert first.status_code == 201  # the 1000th

    again = user_client.post(URL, keyed("sync-42"), format="json")
    assert again.status_code == 200, again.content
    assert (again.json()["id"], again.json()["dedupe_outcome"], again.json()["duplicates"]) == (
        first.json()["id"],
        "existing",
        1,
    )
    assert user_client.post(URL, keyed("nightly-7", "replace"), format="json").status_code == 429  # a new key
    before = written()
    assert_error(user_client.post(URL, keyed("other"), format="json"), 429, code=code)
    assert_error(user_client.post(URL, {"celery_task_name": LONG_RUNNING_TASK}, format="json"), 429, code=code)
    assert written() == before


def test_a_replace_or_keep_latest_duplicate_at_the_quota_changes_the_holder(user, user_client):
    fill(user, 998, age=timedelta(minutes=5))
    pending = user_client.post(URL, keyed("p", "replace"), format="json").json()
    assert user_client.post(URL, keyed("k", "keep_latest"), format="json").status_code == 201
    replaced = user_client.post(URL, keyed("p", "replace", seconds=9), format="json")
    assert replaced.status_code == 200
    assert (replaced.json()["id"], replaced.json()["dedupe_outcome"], replaced.json()["args"]) == (
        pending["id"],
        "replaced",
        [9],
    )
    assert user_client.post(URL, keyed("k", "keep_latest", seconds=3), format="json").json()["dedupe_outcome"] == (
        "replaced"
    )


def test_bulk_items_that_are_duplicates_do_not_count_against_the_quota(user, user_client):
    fill(user, 998, age=timedelta(minutes=5))
    first = user_client.post(URL, keyed("a"), format="json").json()  # 999 active

    # 1 new job and 4 duplicates: 1000 active, accepted.
    response = user_client.post(
        BULK, {"jobs": [keyed("a"), keyed("b"), keyed("a"), keyed("b"), keyed("a")]}, format="json"
    )
    assert response.status_code == 201, response.content
    answers = response.json()
    assert [job["dedupe_outcome"] for job in answers] == ["existing", None, "existing", "existing", "existing"]
    assert answers[0]["id"] == first["id"] and answers[1]["id"] == answers[3]["id"] != first["id"]

    # Only duplicates, at the quota: accepted, nothing new (200, as a single create's duplicate).
    again = user_client.post(BULK, {"jobs": [keyed("a"), keyed("b")]}, format="json")
    assert again.status_code == 200
    assert [job["dedupe_outcome"] for job in again.json()] == ["existing", "existing"]
    assert Job.objects.filter(owner=user, status=JobStatus.PENDING).count() == 1000

    # A new item among duplicates: 429, and nothing of the request is written (nor counted).
    before = written()
    over = user_client.post(BULK, {"jobs": [keyed("a"), keyed("c")]}, format="json")
    assert_error(over, 429, code="quota_active_jobs")
    plain = user_client.post(BULK, {"jobs": [keyed("a"), {"celery_task_name": LONG_RUNNING_TASK}]}, format="json")
    assert_error(plain, 429, code="quota_active_jobs")
    assert written() == before
