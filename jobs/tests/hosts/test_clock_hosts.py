"""Scenario 6 of the many-hosts bed (taskhub/testing/hosts/): worker1's clock 120 s ahead and
worker2's (its worker, the maintenance worker and the second beat) 120 s behind (libfaketime), under a
steady load. On Redis and on RabbitMQ.

What decides a job's fate runs on the database's clock: the start's due check, heartbeats and the
sweeper's staleness (``Now()``). So no job is taken for stale and re-queued, none is lost, none runs
twice, and no late write is refused. A run's start and end (``started_at``, ``finished_at``) are the
database's clock too: finished_at - started_at is the run's real length on both skewed hosts.
"""

import time

import pytest

from taskhub.testing.faults import Observer
from taskhub.testing.hosts import Record, create_jobs, fenced_writes, query

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

BED_BROKERS = ("redis", "rabbitmq")
BED_CLOCKS = {"worker1": "+120s", "worker2": "-120s"}

JOBS, SECONDS = 24, 3
SLACK = 15.0
# Nothing waits for staleness or a re-send: the last job is done within its own length, a queue wait
# of one more job and slack after it was created (measured by the test's clock).
AFTER_LAST = 2 * SECONDS + SLACK
# A run's recorded length: its SECONDS, give or take the moments between the start's and the end's
# statements and the task's own steps (its first progress write, its result).
LENGTH = (SECONDS - 0.5, SECONDS + 3.0)


def test_worker_clocks_skewed(request, healthy_bed):
    bed = healthy_bed
    observer = Observer(bed.observer_url)
    start = time.time()
    jobs = []
    for _ in range(JOBS // 4):  # a steady load: 4 jobs every 3 s
        jobs += create_jobs(bed, 4, seconds=SECONDS)
        time.sleep(max(0.0, start + len(jobs) / 4 * SECONDS - time.time()))
    created_at = time.time()
    rows = observer.settle(dict.fromkeys(jobs, "succeeded"), timeout=AFTER_LAST + 60)
    done_at = time.time()
    bound = round(created_at - start + AFTER_LAST, 1)
    skew = query(
        bed,
        """SELECT split_part(j.worker, ':', 1), min(extract(epoch FROM j.finished_at - j.started_at)),
                  max(extract(epoch FROM j.finished_at - j.started_at)), count(*)
           FROM jobs_job j WHERE j.id = ANY(%s::uuid[]) GROUP BY 1 ORDER BY 1""",
        [jobs],
    )
    refused = fenced_writes(bed.logs("worker1") + bed.logs("worker2"))
    spread = "; ".join(
        f"{host}: {int(n)} jobs, finished_at − started_at {lo:.1f}…{hi:.1f} s" for host, lo, hi, n in skew
    )
    record = Record.settled(
        request,
        bed,
        jobs=jobs,
        rows=rows,
        recovery_s=round(done_at - start, 1),
        bound_s=bound,
        fenced=len(refused),
        late_changes=0,
        note=f"worker1 +120 s, worker2 −120 s; recovery = from the first create to every job done (the "
        f"test's clock), bound = the creates' {created_at - start:.0f} s + {AFTER_LAST:g} s; {spread}",
    )
    assert record.lost == 0 and record.twice == 0, rows
    assert not [r for r in rows.values() if r["requeued"]], rows  # nobody taken for stale
    assert record.fenced == 0, refused
    assert {host for host, *_ in skew} == {"celery@worker1", "celery@worker2"}, skew  # both hosts worked
    # The database's clock stamps both ends of a run: no skew in its length (it was ±120 s).
    assert all(LENGTH[0] <= lo and hi <= LENGTH[1] for _, lo, hi, _ in skew), skew
    assert record.recovery_s <= bound
