"""A worker host that goes away mid-job and comes back, in the many-hosts bed (taskhub/testing/hosts/):
its link down for 90 s (scenario 1), its processes stopped for 90 s (scenario 2). On Redis and on RabbitMQ.

The other worker host's sweeper re-queues the cut-off jobs once their heartbeat is JOB_STALE_AFTER old
and worker2 runs them again (at least once: the cut-off runs start again, the only jobs allowed to run
twice). When worker1 is back its runs write late — heartbeat, progress — and the door's fence on the
attempt refuses every one of them: 0 rows changed, one WARNING each (counted from its log).
"""

import time

import pytest

from taskhub.testing import PRODUCTION_RECOVERY, wait_for
from taskhub.testing.faults import Observer
from taskhub.testing.hosts import Record, create_jobs, fenced_writes, late_changes

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

# On Redis, and on RabbitMQ (a virtual host of the machine's RabbitMQ through a relay listening on the
# db host's broker address): one bed each.
BED_BROKERS = ("redis", "rabbitmq")

HEARTBEAT = float(PRODUCTION_RECOVERY["JOB_HEARTBEAT_INTERVAL"])
STALE = float(PRODUCTION_RECOVERY["JOB_STALE_AFTER"])
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
SLACK = 15.0
OUTAGE = 90.0
SECONDS = 30  # each job's length
# Recovery: the cut-off jobs' last heartbeat is at most one interval before the fault; the sweeper
# sees it stale JOB_STALE_AFTER later, at its next sweep; worker2 then runs them (SECONDS), having
# finished its own backlog by then.
BOUND = HEARTBEAT + STALE + SWEEP + SECONDS + SLACK
# A worker back from a fault consumes again within Celery's reconnect backoff: its consumer retries
# with kombu's Connection.ensure_connection (sleeps of 2, 4, 6, ... s, at most 30 s, between attempts
# of at most broker_connection_timeout, 4 s), then starts again (mingle waits 1 s for its neighbours).
RECONSUME = 30 + 4 + 1 + SLACK


def on_worker1(observer: Observer, jobs: list[str]) -> list[str]:
    """Wait until both of worker1's processes and both of worker2's run jobs (with progress); worker1's."""

    def check():
        rows = [r for r in observer.rows(jobs).values() if r["status"] == "running" and r["progress"] > 0]
        mine = [r["id"] for r in rows if r["worker"].startswith("celery@worker1:")]
        return mine if len(mine) == 2 and len(rows) == 4 else None

    return wait_for(check, timeout=90, interval=0.2, message="2 jobs running on each worker host")


def measure(bed, request, *, jobs, victims, fault_at, log_from, note) -> Record:
    """Settle, record and assert the scenario; ``log_from``: where worker1's log stood at its start.
    Called when the fault ends: worker1 consumes again within RECONSUME (it answers through the broker)."""
    back = bed.wait_serving("worker1", timeout=RECONSUME)
    observer = Observer(bed.observer_url)
    rows = observer.settle(dict.fromkeys(jobs, "succeeded"), timeout=BOUND + 60)
    finished = [r["finished_at"].timestamp() for r in rows.values() if r["finished_at"]]
    twice = [i for i, r in rows.items() if r["started"] > 1]
    # worker1's late writes reach the database once its connections move again: wait for the door's
    # refusal of each cut-off run (its heartbeat at least), then count them all.
    wait_for(
        lambda: {job for job, _ in fenced_writes(bed.logs("worker1")[log_from:])} >= set(victims),
        timeout=120,
        interval=0.5,
        message="worker1's late writes for the cut-off jobs",
    )
    time.sleep(HEARTBEAT)  # the last in-flight heartbeats
    refused = fenced_writes(bed.logs("worker1")[log_from:])
    record = Record.settled(
        request,
        bed,
        jobs=jobs,
        rows=rows,
        twice_allowed=len(victims),
        recovery_s=round(max(finished, default=fault_at) - fault_at, 1),
        bound_s=BOUND,
        fenced=len(refused),
        late_changes=late_changes(bed, victims, "worker1"),
        note=f"{note}; worker1 consumed again {back:g} s after (bound {RECONSUME:g} s)",
    )
    assert record.lost == 0, {i: (r["status"], r["worker"]) for i, r in rows.items()}
    assert set(twice) <= set(victims), twice  # only the cut-off runs start again (at least once)
    assert all(rows[i]["requeued"] == 1 and rows[i]["worker"].startswith("celery@worker2:") for i in victims), rows
    assert record.recovery_s <= BOUND, f"recovered in {record.recovery_s}s, more than {BOUND}s"
    assert {job for job, _ in refused} <= set(victims), refused  # no other job was written late
    assert record.fenced > 0 and record.late_changes == 0, refused
    # worker1 lives on and serves again (on RabbitMQ its reconnect was refused: RESOURCE_LOCKED).
    for process in (p for p in bed.processes if p.host == "worker1"):
        assert process.process.poll() is None, f"{process.name} exited:\n{process.output()[-3000:]}"
    return record


def test_worker_host_link_down(request, healthy_bed):
    """Scenario 1: worker1's link down for 90 s while it runs 2 jobs, then up."""
    bed = healthy_bed
    jobs = create_jobs(bed, 6, seconds=SECONDS)
    victims = on_worker1(Observer(bed.observer_url), jobs)
    log_from = len(bed.logs("worker1"))
    fault_at = time.time()
    bed.link_down("worker1")
    time.sleep(OUTAGE)
    bed.link_up("worker1")
    measure(
        bed,
        request,
        jobs=jobs,
        victims=victims,
        fault_at=fault_at,
        log_from=log_from,
        note="worker1's link down 90 s; its 2 cut-off jobs run again on worker2 (at least once)",
    )


def test_worker_host_paused(request, healthy_bed):
    """Scenario 2: worker1's processes stopped (SIGSTOP) for 90 s while it runs 2 jobs, then resumed."""
    bed = healthy_bed
    jobs = create_jobs(bed, 6, seconds=SECONDS)
    victims = on_worker1(Observer(bed.observer_url), jobs)
    log_from = len(bed.logs("worker1"))
    fault_at = time.time()
    assert bed.pause("worker1")
    time.sleep(OUTAGE)
    bed.resume("worker1")
    measure(
        bed,
        request,
        jobs=jobs,
        victims=victims,
        fault_at=fault_at,
        log_from=log_from,
        note="worker1 stopped 90 s; its 2 paused jobs run again on worker2 (at least once)",
    )


RESTART_DOWN = 5.0  # seconds the db host's PostgreSQL is down
SHORT = 12  # the restart scenario's job length


def test_db_host_postgres_restart(request, healthy_bed):
    """Scenario 8: the db host's PostgreSQL restarted (a fast shutdown: connections closed, 5 s down)
    while both worker hosts run jobs. The runs wait out the outage and go on: none runs again, none is
    refused a write, nobody waits for staleness."""
    bed = healthy_bed
    observer = Observer(bed.observer_url)
    jobs = create_jobs(bed, 4, seconds=SHORT)
    on_worker1(observer, jobs)
    log_from = {host: len(bed.logs(host)) for host in ("worker1", "worker2")}
    fault_at = time.time()
    bed.postgres.stop()
    time.sleep(RESTART_DOWN)
    bed.postgres.start()
    bound = RESTART_DOWN + SHORT + SLACK
    rows = observer.settle(dict.fromkeys(jobs, "succeeded"), timeout=bound + 60)
    finished = [r["finished_at"].timestamp() for r in rows.values() if r["finished_at"]]
    record = Record.settled(
        request,
        bed,
        jobs=jobs,
        rows=rows,
        recovery_s=round(max(finished, default=fault_at) - fault_at, 1),
        bound_s=bound,
        fenced=sum(len(fenced_writes(bed.logs(host)[start:])) for host, start in log_from.items()),
        late_changes=0,
        note="PostgreSQL on the db host down 5 s with 2 jobs running on each worker host; they go on",
    )
    assert record.lost == 0 and record.twice == 0 and record.fenced == 0, rows
    assert record.recovery_s <= bound
