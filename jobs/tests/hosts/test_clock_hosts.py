"""Scenario 6 of the many-hosts bed (taskhub/testing/hosts.py): worker1's clock 120 s ahead and
worker2's (its worker, the maintenance worker and the second beat) 120 s behind (libfaketime), under a
steady load. On Redis.

What decides a job's fate runs on the database's clock: the start's due check, heartbeats and the
sweeper's staleness (``Now()``). So no job is taken for stale and re-queued, none is lost, none runs
twice, and no late write is refused. What a worker stamps with its own clock (a run's end, its
timeline lines) is off by its skew: the note gives the spread seen.
"""

import time

import pytest

from taskhub.testing import PRODUCTION_RECOVERY
from taskhub.testing.faults import Observer
from taskhub.testing.hosts import Record, create_jobs, fenced_writes, query

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

BED_CLOCKS = {"worker1": "+120s", "worker2": "-120s"}

JOBS, SECONDS, PROCESSES = 24, 3, 4
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
SLACK = 15.0
# The load's own length on 4 processes, plus slack: nothing waits for staleness or a re-send.
BOUND = JOBS * SECONDS / PROCESSES + SLACK


def test_worker_clocks_skewed(request, healthy_bed):
    bed = healthy_bed
    observer = Observer(bed.observer_url)
    start = time.time()
    jobs = []
    for _ in range(JOBS // 4):  # a steady load: 4 jobs every 3 s
        jobs += create_jobs(bed, 4, seconds=SECONDS)
        time.sleep(max(0.0, start + len(jobs) / 4 * SECONDS - time.time()))
    rows = observer.settle(dict.fromkeys(jobs, "succeeded"), timeout=BOUND + 60)
    skew = query(
        bed,
        """SELECT split_part(j.worker, ':', 1), min(extract(epoch FROM j.finished_at - j.started_at)),
                  max(extract(epoch FROM j.finished_at - j.started_at)), count(*)
           FROM jobs_job j WHERE j.id = ANY(%s::uuid[]) GROUP BY 1 ORDER BY 1""",
        [jobs],
    )
    finished = [r["finished_at"].timestamp() for r in rows.values() if r["finished_at"]]
    refused = fenced_writes(bed.logs("worker1") + bed.logs("worker2"))
    spread = "; ".join(
        f"{host}: {int(n)} jobs, finished_at − started_at {lo:.1f}…{hi:.1f} s" for host, lo, hi, n in skew
    )
    record = Record.settled(
        request,
        bed,
        jobs=jobs,
        rows=rows,
        recovery_s=round(max(finished, default=start) - start, 1),
        bound_s=BOUND,
        fenced=len(refused),
        late_changes=0,
        note=f"worker1 +120 s, worker2 −120 s; recovery = the load's last job done; {spread}",
    )
    assert record.lost == 0 and record.twice == 0, rows
    assert not [r for r in rows.values() if r["requeued"]], rows  # nobody taken for stale
    assert record.fenced == 0, refused
    assert {host for host, *_ in skew} == {"celery@worker1", "celery@worker2"}, skew  # both hosts worked
    assert record.recovery_s <= BOUND
