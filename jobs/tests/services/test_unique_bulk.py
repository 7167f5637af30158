"""A bulk request's keyed items in one statement on PostgreSQL (issue 21): the first item of each
key goes into one ``INSERT … SELECT … FROM unnest(…) ON CONFLICT … DO UPDATE … RETURNING`` with
the created lines; a later item of the same key is a duplicate of the first, decided by its policy
(the later item wins where the policy says so). Statement counts for 500 keyed items."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobEvent, JobStatus
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
    assert {tuple(counts.items()) for counts in Job.objects.values_list("dedupe_counts", flat=True)} == {
        (("existing", 1),)
    }
    assert JobEvent.objects.filter(kind="deduplicated").count() == 500  # one line per holder
    # 6 to 8: BEGIN, the queue gates' cached reads (when due), the creator's lock, the insert that finds
    # and locks the 500 holders, the one write of their counts and lines, the one read of them, COMMIT.
    # Was 3,004 (one duplicate at a time: a savepoint, the holder's count, its line, the holder read).
    print(f"500 duplicate keyed items: {len(again)} statements")
    assert len(again) <= 12, [query["sql"][:80] for query in again]


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


def holders_of(owner):
    """One job per policy holding its key: pending, or running where the policy acts on a running job."""
    holders = {
        "rej": job_create(owner=owner, **item("rej")),
        "rep": job_create(owner=owner, **item("rep", "replace")),
        "deb": job_create(owner=owner, **item("deb", "debounce", period=5)),
        "kl": job_create(owner=owner, **item("kl", "keep_latest")),
        "thr": job_create(owner=owner, **item("thr", "throttle", period=50)),
        "cr": job_create(owner=owner, **item("cr", "cancel_running")),
    }
    type(owner).objects.filter(pk=owner.pk).update(max_running_jobs=2)  # both running: their own cap
    for name in ("kl", "cr"):
        assert job_start(job_id=holders[name].id, worker=f"w-{name}") is not None
    return {job.id: name for name, job in holders.items()}


DUPLICATES = [
    item("rep", "replace", seconds=2),
    item("deb", "debounce", seconds=3, period=5),
    item("rej"),
    item("kl", "keep_latest", seconds=4),
    item("deb", "debounce", seconds=5, period=5),
    item("thr", "throttle", period=50),
    item("rep", "replace", seconds=6),
    item("kl", "keep_latest", seconds=7),
    item("cr", "cancel_running", seconds=8),  # cancels the running holder: one item at a time
    item("cr", "cancel_running", seconds=9),
    item("fresh", "replace", seconds=10),
    item("fresh", "replace", seconds=11),
]


def outcome_of(owner, holders, answers):
    """What the requests did, in terms both owners share: each answer's holder (by name, or new) and
    outcome, and each key's jobs, arguments, counts, stored request and "deduplicated" lines."""
    answered = [(holders.get(job.id, "new"), job.dedupe_outcome) for job in answers]
    keys = {}
    for job in Job.objects.filter(owner=owner).order_by("created_at"):
        lines = JobEvent.objects.filter(job=job, kind="deduplicated")
        keys.setdefault(job.unique_key, []).append(
            (
                job.status,
                job.args,
                job.duplicates,
                job.dedupe_counts,
                (job.unique_follow_up or {}).get("args"),
                [line.message.rsplit("(", 1)[1] for line in lines],
            )
        )
    return answered, keys


def test_a_bulk_of_duplicates_answers_and_writes_as_the_same_creates_one_at_a_time(user, other_user, published):
    one_by_one = holders_of(user)
    singles = [job_create(owner=user, **request) for request in DUPLICATES]
    together = holders_of(other_user)
    debounced = next(job_id for job_id, name in together.items() if name == "deb")
    published.clear()
    with CaptureQueriesContext(connection) as statements:
        answers = bulk(other_user, DUPLICATES)

    assert outcome_of(other_user, together, answers) == outcome_of(user, one_by_one, singles)
    answered, keys = outcome_of(other_user, together, answers)
    assert [outcome for _, outcome in answered] == [
        *("replaced", "debounced", "existing", "follow_up_queued", "debounced", "throttled", "replaced"),
        *("follow_up_queued", "cancelled_running", "existing", None, "replaced"),
    ]
    assert keys["rep"] == [("pending", [6], 2, {"replaced": 2}, None, ["replaced)."])]  # the later item wins
    assert keys["kl"] == [("running", [1], 2, {"follow_up_queued": 2}, [7], ["follow_up_queued)."])]
    assert keys["deb"][0][1:4] == ([5], 2, {"debounced": 2})
    assert answers[10].id == answers[11].id and answers[10].args == answers[11].args == [11]
    # The debounced holder's start moved a period past the request: its message goes again (once).
    holder = Job.objects.get(id=debounced)
    assert holder.run_at > holder.created_at + timedelta(seconds=4)
    assert [message["id"] for message in published].count(str(debounced)) == 1
    print(f"a bulk of {len(DUPLICATES)} duplicates over 7 keys, one cancel_running: {len(statements)} statements")
