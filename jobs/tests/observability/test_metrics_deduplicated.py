"""``taskhub_jobs_deduplicated_total{task,outcome}`` on /metrics (issue 21): every outcome of real API
duplicates counted, and a counter that never goes back when the jobs are deleted (job_delete, the
retention purge) or when a job keeps receiving duplicates after it finished (throttle)."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from jobs.models import TERMINAL_STATUSES, Job
from jobs.services.execution import job_start, job_succeed
from jobs.services.operations import job_delete
from jobs.services.retention import job_purge_finished
from jobs.tests.factories import LONG_RUNNING_TASK
from jobs.tests.observability.test_metrics import scrape, value

pytestmark = pytest.mark.django_db

URL = "/api/v1/jobs/"
DATA = "jobs.tasks.common_tasks.process_data"
METRIC = "taskhub_jobs_deduplicated_total"


def post(client, key, policy="reject", task=LONG_RUNNING_TASK, args=(1,), **rule):
    body = {"celery_task_name": task, "args": list(args), "unique": {"key": key, "policy": policy, **rule}}
    response = client.post(URL, body, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def counted(samples, task=LONG_RUNNING_TASK) -> dict[str, float]:
    outcomes = ("existing", "replaced", "debounced", "follow_up_queued", "throttled", "cancelled_running")
    return {outcome: value(samples, METRIC, task=task, outcome=outcome) for outcome in outcomes}


def finish(job_id, *, running=False):
    if not running:
        job_start(job_id=job_id, worker="w1")
    job_succeed(job_id=job_id, attempts=0, result=None, worker="w1")


def test_every_outcome_is_counted_and_the_counter_never_goes_back(user, user_client, staff_user):
    user.max_running_jobs = 0  # no cap on running jobs: several run at once here, with no worker alive
    user.save(update_fields=["max_running_jobs"])
    session = Client()
    session.force_login(staff_user)
    assert counted(scrape(session)) == dict.fromkeys(counted({}), 0.0)

    reject = post(user_client, "r")
    for _ in range(3):
        assert post(user_client, "r")["dedupe_outcome"] == "existing"
    post(user_client, "p", "replace")
    assert post(user_client, "p", "replace", args=[2])["dedupe_outcome"] == "replaced"
    post(user_client, "d", "debounce", period=60)
    assert post(user_client, "d", "debounce", period=60)["dedupe_outcome"] == "debounced"
    latest = post(user_client, "k", "keep_latest")
    job_start(job_id=latest["id"], worker="w1")
    for _ in range(2):
        assert post(user_client, "k", "keep_latest")["dedupe_outcome"] == "follow_up_queued"
    throttled = post(user_client, "t", "throttle", period=3600)
    assert post(user_client, "t", "throttle", period=3600)["dedupe_outcome"] == "throttled"
    running = post(user_client, "c", "cancel_running")
    job_start(job_id=running["id"], worker="w1")
    assert post(user_client, "c", "cancel_running")["dedupe_outcome"] == "cancelled_running"
    assert post(user_client, "other-task", task=DATA, args=[])["dedupe_outcome"] is None
    assert post(user_client, "other-task", task=DATA, args=[])["dedupe_outcome"] == "existing"

    expected = {
        "existing": 3,
        "replaced": 1,
        "debounced": 1,
        "follow_up_queued": 2,
        "throttled": 1,
        "cancelled_running": 1,
    }
    samples = scrape(session)
    assert counted(samples) == expected
    assert counted(samples, task=DATA)["existing"] == 1
    # The job rows keep the counts (the holder's duplicates, by outcome).
    assert Job.objects.get(id=reject["id"]).dedupe_counts == {"existing": 3}

    # A finished throttle job still holds its key: its later duplicates count too.
    finish(throttled["id"])
    assert post(user_client, "t", "throttle", period=3600)["dedupe_outcome"] == "throttled"
    expected["throttled"] = 2
    # Deleted one by one (the API, the admin) or by the retention purge: folded into the totals.
    finish(reject["id"])
    job_delete(job_id=reject["id"])
    finish(latest["id"], running=True)  # its follow-up (a new job, with no duplicates of its own) is created
    long_ago = timezone.now() - timedelta(days=400)
    Job.objects.filter(status__in=TERMINAL_STATUSES).update(created_at=long_ago, finished_at=long_ago)
    purged = job_purge_finished(older_than=timedelta(days=1))
    assert purged["succeeded"] == 2
    assert not Job.objects.filter(id__in=[throttled["id"], latest["id"]]).exists()
    assert counted(scrape(session)) == expected

    # And it goes on from there.
    assert post(user_client, "r")["dedupe_outcome"] is None  # the key was released by the finish
    assert post(user_client, "r")["dedupe_outcome"] == "existing"
    expected["existing"] = 4
    assert counted(scrape(session)) == expected


def test_a_deleted_user_accounts_duplicates_stay_counted(user, user_client, other_user, staff_user):
    """A user account deleted (``delete()`` of the user, or of a queryset of users: a shell, a
    command; the admin refuses an account with jobs, whose timeline lines it never deletes) takes its
    jobs by cascade: their counts go into the totals in the same transaction."""
    session = Client()
    session.force_login(staff_user)
    post(user_client, "r")
    post(user_client, "r")
    post(user_client, "p", "replace")
    post(user_client, "p", "replace", args=[2])
    other = APIClient()
    other.force_authenticate(other_user)
    for _ in range(3):
        post(other, "r", task=DATA, args=[])
    expected = {**dict.fromkeys(counted({}), 0.0), "existing": 1, "replaced": 1}
    assert counted(scrape(session)) == expected and counted(scrape(session), task=DATA)["existing"] == 2

    user.delete()
    type(other_user).objects.filter(pk=other_user.pk).delete()
    assert not Job.objects.exists()

    samples = scrape(session)
    assert counted(samples) == expected
    assert counted(samples, task=DATA)["existing"] == 2
