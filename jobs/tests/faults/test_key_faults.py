"""The fault suite's keyed-jobs scenario (issue 21, "no stuck key"): the worker running jobs that hold
unique keys (reject, keep_latest with a stored follow-up request) and a concurrency key (limit 1,
more jobs waiting behind it) is SIGKILLed and started again, on Redis and on RabbitMQ, with the
production recovery settings (taskhub.testing.PRODUCTION_RECOVERY: no override anywhere, neither in
the processes nor in this one). One recovery wait per broker: every kind of keyed job is in the one
scenario. Its row goes to docs/RELIABILITY.md like test_faults.py's (taskhub/testing/faults.py).

The short-recovery mechanism tests are jobs/tests/tasks/test_unique_workers.py and
test_concurrency_workers.py; this is their production-default counterpart.
"""

import time
from itertools import pairwise

import pytest

from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import timeline
from taskhub.testing import PRODUCTION_RECOVERY, wait_for
from taskhub.testing.faults import Observer, outcome

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.timeout(360)]

# The bounds come from the production defaults, as test_faults.py derives its own.
STALE = float(PRODUCTION_RECOVERY["JOB_STALE_AFTER"])
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
SLACK = 15.0
HELD = 15  # seconds of work of each job running at the kill (it must still run when the worker dies)
WAITING = 2  # seconds of work of each job waiting behind the concurrency key
BEHIND = 3  # jobs waiting behind the concurrency key's holder
HOLDERS = 5  # jobs running at the kill: the 4 unique keys' holders and the concurrency key's
# A process more than the holders: it takes the messages of the jobs behind the concurrency key and
# finds the key full (they wait, unsent), as it would on a worker with room.
PROCESSES = HOLDERS + 1
TENANT = {"key": "ukill-tenant", "limit": 1}
# Each unique key's holder: its policy and retries. With a retry left the recovery re-queues the job
# (it keeps its key while pending and runs again); without, it ends failed ("Worker lost").
UNIQUE = {
    "ukill-reject-rerun": ("reject", 1),
    "ukill-reject-fail": ("reject", 0),
    "ukill-latest-rerun": ("keep_latest", 1),
    "ukill-latest-fail": ("keep_latest", 0),
}
LATEST = [key for key, (policy, _) in UNIQUE.items() if policy == "keep_latest"]
REQUESTS = 3  # keep_latest duplicates while the holder runs: the follow-up has the last one's kwargs


def post(api, expected: int, *, seconds: int, **body) -> dict:
    response = api.post(
        "/api/v1/jobs/", {"celery_task_name": "long_running_task", "args": [seconds], **body}, format="json"
    )
    assert response.status_code == expected, response.content
    return response.json()


def follow_up_of(key: str, holder: str) -> Job | None:
    return Job.objects.filter(unique_key=key).exclude(id=holder).first()


def test_keyed_jobs_worker_main_sigkill(request, stack, api):
    """The whole worker dies (main process and pool) while it runs 4 jobs holding unique keys and the
    holder of a limit-1 concurrency key, 3 jobs waiting behind that key; its process manager starts
    it again. Once recovery has finished the killed jobs, each unique key takes a new job (a new row,
    201), the keep_latest follow-ups exist once with the latest request, and the key's waiting jobs
    all ran, one at a time."""
    worker = stack.worker(concurrency=PROCESSES, wait=False)
    stack.housekeeping()
    stack.wait_ready()
    holders = {
        key: post(api, 201, seconds=HELD, unique={"key": key, "policy": policy}, max_retries=retries)["id"]
        for key, (policy, retries) in UNIQUE.items()
    }
    tenant_holder = post(api, 201, seconds=HELD, concurrency=TENANT, max_retries=1)["id"]
    killed = [*holders.values(), tenant_holder]
    Observer().running(killed, HOLDERS)

    # While they run: a reject duplicate gets its holder; keep_latest ones are stored for the follow-up.
    for key, (policy, _) in UNIQUE.items():
        if policy == "reject":
            answer = post(api, 200, seconds=0, unique={"key": key, "policy": policy})
            assert (answer["id"], answer["dedupe_outcome"]) == (holders[key], "existing")
    for version in range(REQUESTS):
        for key in LATEST:
            body = {"unique": {"key": key, "policy": "keep_latest"}, "kwargs": {"version": str(version)}}
            answer = post(api, 200, seconds=1, **body)
            assert (answer["id"], answer["dedupe_outcome"]) == (holders[key], "follow_up_queued")
    waiting = [post(api, 201, seconds=WAITING, concurrency=TENANT, max_retries=1)["id"] for _ in range(BEHIND)]
    wait_for(
        lambda: Job.objects.filter(id__in=waiting, concurrency_waiting_since__isnull=False).count() == BEHIND,
        timeout=30,
        interval=0.2,
        message="the jobs behind the concurrency key to wait",
    )
    rows = Observer().rows(killed)
    assert {row["status"] for row in rows.values()} == {"running"}, "a holder ended before the kill"

    fault_at = time.time()
    worker.kill()
    stack.worker(concurrency=PROCESSES)  # as a process manager restarts it

    # The failed keep_latest holder's follow-up is written by its recovery; the re-queued one's when
    # its second run ends. Both are part of what the recovery must finish.
    bound = STALE + 2 * SWEEP + HELD + BEHIND * WAITING + SLACK
    follow_ups = {
        key: wait_for(
            lambda key=key: follow_up_of(key, holders[key]),
            timeout=bound + 30,
            interval=0.5,
            message=f"the follow-up of {key}",
        ).id
        for key in LATEST
    }
    expected = {
        **{holders[key]: ("succeeded" if retries else "failed") for key, (_, retries) in UNIQUE.items()},
        tenant_holder: "succeeded",
        **dict.fromkeys(waiting, "succeeded"),
        **dict.fromkeys(map(str, follow_ups.values()), "succeeded"),
    }
    reruns = sum(1 for _, retries in UNIQUE.values() if retries) + 1
    result = outcome(
        request=request,
        expected=expected,
        fault_at=fault_at,
        twice_allowed=reruns,
        timeout=bound + 60,
        within=bound,
        note=(
            f"{len(UNIQUE)} unique-key holders ({reruns - 1} re-run, {len(UNIQUE) - reruns + 1} failed as "
            f"max_retries 0 says), 2 keep_latest follow-ups, a limit-1 key's holder re-run and its {BEHIND} "
            "waiting jobs run one at a time; then each key takes a new job (no stuck key)"
        ),
    )
    assert result.twice == reruns  # the killed jobs with a retry left ran again, from the start

    # Recovered as the rules say: re-queued once (a retry left) or failed "Worker lost" by the sweeper.
    after = {str(job.id): job for job in Job.objects.filter(id__in=killed)}
    for job_id in killed:
        job = after[job_id]
        if job.status == JobStatus.FAILED:
            assert job.error.startswith("Worker lost") and job.attempts == 0, job.error
            assert JobEvent.objects.filter(job_id=job_id, kind="failed", actor_label="sweeper").exists()
        else:
            assert job.attempts == 1 and JobEvent.objects.filter(job_id=job_id, kind="requeued").count() == 1

    # keep_latest: exactly one follow-up per key, with the latest request.
    latest = {"version": str(REQUESTS - 1)}
    for key in LATEST:
        [follow_up] = Job.objects.filter(unique_key=key).exclude(id=holders[key])
        assert follow_up.kwargs == latest and follow_up.result["labels"] == latest
        assert follow_up.unique_follow_up is None and after[holders[key]].unique_follow_up is None

    # The concurrency key: every waiting job ran once, never two at a time (the killed run included:
    # nothing of the key started before its recovery).
    tenant = list(Job.objects.filter(id__in=[tenant_holder, *waiting]).order_by("started_at"))
    for before, later in pairwise(tenant):
        assert later.started_at >= before.finished_at, f"{before.id} and {later.id} of the key overlapped"
    for job_id in waiting:
        assert len(timeline(job_id, "started")) == 1
    first_rerun = min(job.started_at for job in tenant)
    assert first_rerun.timestamp() >= fault_at + STALE - 1, "a job of the key started before the recovery"

    # No stuck key: nothing holds any of them now, and each takes a new job (a new row: 201).
    assert not Job.objects.filter(unique_key__in=list(UNIQUE), unique_held=True).exists()
    earlier = set(expected)
    fresh = {}
    for key, (policy, retries) in UNIQUE.items():
        answer = post(api, 201, seconds=0, unique={"key": key, "policy": policy}, max_retries=retries)
        assert answer["id"] not in earlier and answer["dedupe_outcome"] is None
        fresh[key] = answer["id"]
    fresh[TENANT["key"]] = post(api, 201, seconds=0, concurrency=TENANT)["id"]
    settled = Observer().settle(dict.fromkeys(fresh.values(), "succeeded"), timeout=30)
    assert {row["status"] for row in settled.values()} == {"succeeded"}, settled
    assert Job.objects.filter(unique_key__in=list(UNIQUE)).count() == 2 * len(UNIQUE) + len(LATEST)
