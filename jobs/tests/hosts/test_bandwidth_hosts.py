"""Scenario 7 of the many-hosts bed (taskhub/testing/hosts/): worker1's link limited to 1 Mbit/s both
ways (``tc … tbf``) under a steady load of jobs whose kwargs and results carry 200 KB each. On Redis
and on RabbitMQ.

Nothing is lost or taken twice: the slow host's jobs take longer (their payloads cross its link), but
their heartbeats keep coming (JOB_STALE_AFTER is far above a payload's transfer), none of the socket
timeouts (Redis 5 s, DATABASE_TCP_USER_TIMEOUT 10 s) fires on a link that is slow but moving, and
every result arrives whole.
"""

import time

import pytest

from taskhub.testing.faults import Observer
from taskhub.testing.hosts import Record, create_payload_jobs, fenced_writes, query

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

BED_BROKERS = ("redis", "rabbitmq")

RATE, RATE_BYTES = "1mbit", 1_000_000 / 8  # tc's mbit: 10^6 bits a second
PAYLOAD = 200 * 1024
JOBS, SECONDS = 12, 2
SLACK = 15.0
# What one job on the slow host moves across its link, each way: in, its message (the kwargs) and the
# row its start reads back (the kwargs again); out, its result into the job's row and into Celery's
# result row. The host's two worker processes share the link: two jobs' worth each way.
TRANSFER = 2 * 2 * PAYLOAD / RATE_BYTES
# The last job created is done within its own length, both directions' transfers and slack (the
# test's clock: from its create to every job done).
AFTER_LAST = SECONDS + 2 * TRANSFER + SLACK


def test_worker_host_bandwidth_limited(request, healthy_bed):
    bed = healthy_bed
    bed.rate_limit("worker1", RATE)
    observer = Observer(bed.observer_url)
    start = time.time()
    jobs = []
    for _ in range(JOBS // 2):  # a steady load: 2 jobs every SECONDS (or as fast as the creates go)
        jobs += create_payload_jobs(bed, 2, seconds=SECONDS, payload=PAYLOAD)
        time.sleep(max(0.0, start + len(jobs) / 2 * SECONDS - time.time()))
    created_at = time.time()
    rows = observer.settle(dict.fromkeys(jobs, "succeeded"), timeout=AFTER_LAST + 60)
    done_at = time.time()
    bound = round(created_at - start + AFTER_LAST, 1)
    hosts = query(
        bed,
        """SELECT split_part(j.worker, ':', 1), count(*), avg(extract(epoch FROM j.finished_at - j.started_at)),
                  max(extract(epoch FROM j.finished_at - j.started_at)), min(length(j.result->'labels'->>'blob')),
                  min(length(j.kwargs->>'blob'))
           FROM jobs_job j WHERE j.id = ANY(%s::uuid[]) GROUP BY 1 ORDER BY 1""",
        [jobs],
    )
    refused = fenced_writes(bed.logs("worker1") + bed.logs("worker2"))
    spread = "; ".join(
        f"{host}: {n} jobs, run {mean:.1f} s on average (longest {top:.1f} s)" for host, n, mean, top, *_ in hosts
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
        note=f"worker1 limited to 1 Mbit/s both ways; {JOBS} jobs of {SECONDS} s with 200 KB kwargs and results; "
        f"recovery = from the first create to every job done, bound = the creates' {created_at - start:.0f} s + "
        f"{AFTER_LAST:.0f} s (a payload's transfer {TRANSFER / 2:.1f} s each way); {spread}",
    )
    assert record.lost == 0 and record.twice == 0, {i: (r["status"], r["worker"]) for i, r in rows.items()}
    assert not [r for r in rows.values() if r["requeued"]], rows  # nobody taken for stale
    assert record.fenced == 0, refused
    assert {host for host, *_ in hosts} == {"celery@worker1", "celery@worker2"}, hosts  # the slow host worked
    assert all(result == PAYLOAD and sent == PAYLOAD for *_, result, sent in hosts), hosts  # every payload whole
    assert record.recovery_s <= bound
