"""The api host cut off, in the many-hosts bed (taskhub/testing/hosts/), with API clients on the
client host creating a job and probing readiness every second. On Redis and on RabbitMQ.

Scenario 3: the api host cut from the broker for 60 s. Every create still answers 201 within
BROKER_ANSWER seconds (the send gives up after the Redis socket timeout, the row stays unsent),
readiness says 503 naming the broker (the database still ok), and every job runs once: the sweeper
(the maintenance worker on worker2, which still reaches the broker) sends the unsent rows after
JOB_DISPATCH_AFTER. On RabbitMQ too: a send counts only once the broker confirmed it
(jobs/services/_confirms.py), so the message written into the connection as the cut silences it is
not taken as sent (before publisher confirms it was, and lost with the connection: its job waited for
JOB_LOST_AFTER).

Scenario 4: the api host cut from the database for 60 s (packets dropped both ways: connections hang,
as in a real partition). Every answer comes within a bound (DATABASE_TCP_USER_TIMEOUT /
DATABASE_POOL_TIMEOUT), readiness says 503 naming the database (the broker still ok), creates say 503
``database_unavailable`` (never a 500), nothing is half-written (the jobs in the database are exactly
the 201s), and both are back to normal after the link returns.
"""

import time

import pytest

from taskhub.testing import PRODUCTION_RECOVERY
from taskhub.testing.faults import Observer
from taskhub.testing.hosts import Client, Record, query

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

BED_WEB = True  # web on the api host (conftest.py)
BED_BROKERS = ("redis", "rabbitmq")

CUT = 60.0
BEFORE, AFTER = 10.0, 60.0
# The production defaults (taskhub/settings/database.py): a write that goes unanswered fails after
# DATABASE_TCP_USER_TIMEOUT, a new connection after DATABASE_CONNECT_TIMEOUT, a borrowed one after
# DATABASE_POOL_TIMEOUT; an answer during the cut takes at most the longest of them, plus slack.
TCP_USER_TIMEOUT, CONNECT_TIMEOUT, POOL_TIMEOUT = 10.0, 5.0, 10.0
SLACK = 5.0
ANSWER = max(TCP_USER_TIMEOUT, CONNECT_TIMEOUT, POOL_TIMEOUT) + SLACK
# Back to normal: the pool's connections broke during the cut; it opens new ones once the link is
# back (psycopg_pool retries with a backoff that grows while the cut lasts).
RECOVERY = 30.0 + SLACK
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
DISPATCH = float(PRODUCTION_RECOVERY["JOB_DISPATCH_AFTER"])
# A send to a broker that went silent gives up after the Redis socket timeout
# (CELERY_BROKER_TRANSPORT_OPTIONS, taskhub/settings/workers.py: 5 s) or RabbitMQ's confirm timeout
# (BROKER_CONFIRM_TIMEOUT, 5 s), its one retry fails at once.
BROKER_ANSWER = 5.0 + SLACK
# A job created during the cut is sent by the sweeper: unsent for JOB_DISPATCH_AFTER, seen at the
# next sweep, then started by a free worker process (jobs of 1 s, 4 processes).
SENT_WITHIN = DISPATCH + 2 * SWEEP + SLACK


def clients_through_a_cut(bed, service: str, *, after: float) -> tuple[list[dict], float, float]:
    """The client host's answers while the api host is cut from ``service`` for CUT seconds (BEFORE
    seconds before, ``after`` seconds after); with when the cut began and ended."""
    client = Client(bed, seconds=BEFORE + CUT + after)
    time.sleep(BEFORE)
    cut_at = time.time()
    bed.cut_from("api", service)
    time.sleep(CUT)
    bed.reconnect()
    healed_at = time.time()
    return client.wait(timeout=after + 2 * 60), cut_at, healed_at


def test_api_host_cut_from_broker(request, healthy_bed):
    bed = healthy_bed
    answers, cut_at, healed_at = clients_through_a_cut(bed, "broker", after=BEFORE)
    creates = [a for a in answers if a["kind"] == "create"]
    during = [a for a in answers if cut_at + BROKER_ANSWER <= a["at"] and a["at"] + a["took"] < healed_at]
    created = [a["id"] for a in creates if a["status"] == 201]
    bound = SENT_WITHIN
    rows = Observer(bed.observer_url).settle(dict.fromkeys(created, "succeeded"), timeout=bound + 60)
    waits = query(
        bed,
        # A job's first start: a stored started line (of an earlier run), else its row's (jobs.timeline).
        "SELECT extract(epoch FROM LEAST(min(e.at), j.started_at) - j.created_at) FROM jobs_job j "
        "LEFT JOIN jobs_jobevent e ON e.job_id = j.id AND e.kind = 'started' "
        "WHERE j.id = ANY(%s::uuid[]) GROUP BY j.id, j.created_at, j.started_at",
        [created],
    )
    lost = [float(wait) for (wait,) in waits if wait > SENT_WITHIN]
    result = Record.settled(
        request,
        bed,
        jobs=created,
        rows=rows,
        recovery_s=round(max(float(wait) for (wait,) in waits), 1),
        bound_s=bound,
        note=f"{len(creates)} creates: {len(created)} × 201 (slowest {max(a['took'] for a in creates):.1f} s, "
        f"bound {BROKER_ANSWER:g} s), {len(creates) - len(created)} other; readiness 503 naming the broker "
        f"during the cut; {sum(r['late_sends'] for r in rows.values())} sent by the sweeper; "
        f"{len(lost)} waited past {SENT_WITHIN:g} s (a message taken as sent and lost with the connection "
        "would wait for JOB_LOST_AFTER); recovery = the longest wait from a create to its job's start",
    )
    assert [a["status"] for a in creates] == [201] * len(creates), creates
    assert all(a["took"] <= BROKER_ANSWER for a in answers), max(a["took"] for a in answers)
    for answer in (a for a in during if a["kind"] == "ready"):
        assert answer["status"] == 503 and answer["checks"]["broker"].startswith("down"), answer
        assert answer["checks"]["database"] == "ok", answer
    assert [a for a in during if a["kind"] == "create"], answers
    assert result.lost == 0 and result.twice == 0, rows
    assert result.recovery_s <= bound
    assert lost == [], lost


def client_jobs(bed) -> set[str]:
    return {
        row[0]
        for row in query(
            bed,
            "SELECT j.id::text FROM jobs_job j JOIN accounts_user u ON u.id = j.owner_id "
            "WHERE u.username = 'bed-client'",
        )
    }


def test_api_host_cut_from_database(request, healthy_bed):
    bed = healthy_bed
    earlier = client_jobs(bed)  # the module's other scenarios' (one bed per module)
    answers, cut_at, healed_at = clients_through_a_cut(bed, "database", after=AFTER)
    creates = [a for a in answers if a["kind"] == "create"]
    ready = [a for a in answers if a["kind"] == "ready"]
    before = [a for a in answers if a["at"] + a["took"] < cut_at]
    during = [a for a in answers if cut_at + ANSWER <= a["at"] and a["at"] + a["took"] < healed_at]
    normal_again = min(
        (a["at"] + a["took"] for a in creates if a["at"] > healed_at and a["status"] == 201), default=float("inf")
    )
    after = [a for a in answers if a["at"] >= normal_again]
    created = [a["id"] for a in creates if a["status"] == 201]
    stored = client_jobs(bed) - earlier
    rows = Observer(bed.observer_url).settle(dict.fromkeys(created, "succeeded"), timeout=60)
    result = Record.settled(
        request,
        bed,
        jobs=created,
        rows=rows,
        recovery_s=round(normal_again - healed_at, 1),
        bound_s=RECOVERY,
        note=f"{len(creates)} creates: {len(created)} × 201, "
        f"{sum(1 for a in creates if a['status'] == 503)} × 503 database_unavailable, "
        f"{sum(1 for a in answers if a['status'] not in (200, 201, 503))} other; readiness 503 naming the "
        f"database during the cut; slowest answer {max(a['took'] for a in answers):.1f} s (bound {ANSWER:g} s); "
        "recovery = link back to the first 201",
    )
    assert before and during and after, answers
    assert all(a["status"] in (200, 201) for a in before + after), before + after
    assert all(a["took"] <= ANSWER for a in answers), max(a["took"] for a in answers)
    assert not [a for a in answers if a["status"] not in (200, 201, 503)], answers  # no 500, no lost connection
    for answer in (a for a in during if a["kind"] == "ready"):
        assert answer["status"] == 503 and answer["checks"]["database"].startswith("down")
        assert answer["checks"]["broker"] == "ok", answer
    for answer in (a for a in during if a["kind"] == "create"):
        assert (answer["status"], answer["code"]) == (503, "database_unavailable"), answer
        assert "database" in answer["message"], answer
    assert stored == set(created)  # nothing half-written: the jobs are exactly the 201s
    assert result.lost == 0 and result.twice == 0
    assert result.recovery_s <= RECOVERY
    assert ready[-1]["status"] == 200
