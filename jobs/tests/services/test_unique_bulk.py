"""A bulk request's keyed items in one statement on PostgreSQL (issue 21): the first item of each
key goes into one ``INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE … RETURNING`` with
the created lines; a later item of the same key is a duplicate of the first, decided by its policy
(the later item wins where the policy says so). Statement counts for 500 keyed items."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_start
from jobs.tests.factories import LONG_RUNNING_TASK, kinds, timeline

pytestmark = pytest.mark.django_db(transaction=True)


def item(key, policy="reject", seconds=1, **rule):
    return {"celery_task_name": LONG_RUNNING_TASK, "args": [seconds], "unique": {"key": key, "policy": policy, **rule}}


def bulk(owner, items):
    """As the API calls it: the bulk's own transaction is the outermost one (autocommit around it)."""
    return job_create_bulk(owner=owner, items=items)


def test_500_keyed_items_are_a_handful_of_statements(user, published):
    with CaptureQueriesContext(connection) as new:
        jobs = bulk(user, [item(f"key-{n}") for n in range(500)])
    assert [job.dedupe_outcome for job in jobs] == [None] * 500
    assert Job.objects.count() == 500 and {kinds(job)[0] for job in jobs} == {"created"}
    assert timeline(jobs[0])[0].message == "Created (bulk) on queue default with priority normal."
    assert len(published) == 500
    # Before: 2 statements per keyed item (the creator's lock and the insert), 1,008 in all. Now 8:
    # BEGIN, the queue gates read by the send, the creator's lock, the one insert of the 500 rows
    # with their lines, the quota's lock and count (once, for the 500 written), COMMIT.
    print(f"500 new keyed items: {len(new)} statements")
    assert len(new) <= 10, [query["sql"][:80] for query in new]

    with CaptureQueriesContext(connection) as again:
        repeated = bulk(user, [item(f"key-{n}") for n in range(500)])
    assert [job.id for job in repeated] == [job.id for job in jobs]
    assert {job.dedupe_outcome for job in repeated} == {"existing"}
    assert Job.objects.count() == 500 and set(Job.objects.values_list("duplicates", flat=True)) == {1}
    # Each duplicate is still decided and written on its holder one by one (its count, its line):
    # 3,004 statements (4,026 before).
    print(f"500 duplicate keyed items: {len(again)} statements")
    assert len(again) < 7 * 500


def test_same_key_items_inside_one_bulk_fold_into_the_first_and_the_later_wins_where_the_policy_says(user):
    holder = job_create(owner=user, **item("held", "replace"))
    running = job_create(owner=user, **item("running", "keep_latest"))
    job_start(job_id=running.id, worker="w")
    jobs = bulk(
        user,
        [
            item("r", "replace", seconds=1),
            item("held", "replace", seconds=2),
            item("r", "replace", seconds=3),
            item("x"),
            item("running", "keep_latest", seconds=4),
            item("x"),
            item("running", "keep_latest", seconds=5),
        ],
    )
    assert [job.dedupe_outcome for job in jobs] == [
        None,
        "replaced",
        "replaced",
        None,
        "follow_up_queued",
        "existing",
        "follow_up_queued",
    ]
    assert jobs[0].id == jobs[2].id and jobs[3].id == jobs[5].id and jobs[1].id == holder.id
    assert Job.objects.get(id=jobs[0].id).args == [3]  # the later item wins (replace)
    assert Job.objects.get(id=holder.id).args == [2]
    assert Job.objects.get(id=running.id).unique_follow_up["args"] == [5]
    assert Job.objects.filter(status=JobStatus.PENDING).count() == 3
