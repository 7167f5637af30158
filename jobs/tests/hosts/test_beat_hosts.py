"""Scenario 5 of the many-hosts bed (taskhub/testing/hosts/): the two beats — on the api host and on
worker2 — cut from each other for 2 minutes of a 5-second schedule. On Redis and on RabbitMQ.

Beats never talk to each other: each fires every slot it sees due, and the database keeps one job
per slot (``Job``'s unique (schedule, scheduled_for), jobs/schedules/firing.py). So the cut changes
nothing: exactly 1 firing per slot and 0 missed slots, before, during and after it.
"""

import time
from datetime import timedelta

import pytest

from taskhub.testing import wait_for
from taskhub.testing.hosts import Record, create_schedule, disable_schedule, query

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(600)]

# On Redis, and on RabbitMQ (a virtual host of the machine's RabbitMQ through a relay listening on the
# db host's broker address): one bed each.
BED_BROKERS = ("redis", "rabbitmq")

EVERY = 5.0  # the schedule's interval
CUT = 120.0
MAX_INTERVAL = 5.0  # django-celery-beat's DatabaseScheduler wakes at least this often (beat's log says so)
SLACK = 5.0
# A firing's lateness: a beat sleeps at most its max interval between looks, then the job is created and sent.
BOUND = MAX_INTERVAL + SLACK


def firings(bed, periodic_task_id: int) -> list[tuple]:
    return query(
        bed,
        """SELECT j.scheduled_for, count(*), min(j.created_at), bool_and(j.status = 'succeeded')
           FROM jobs_job j WHERE j.schedule_id = %s GROUP BY j.scheduled_for ORDER BY j.scheduled_for""",
        [periodic_task_id],
    )


def test_two_beats_cut_from_each_other(request, healthy_bed):
    bed = healthy_bed
    schedule = create_schedule(bed)
    wait_for(lambda: len(firings(bed, schedule)) >= 2, timeout=30, message="the schedule's first firings")
    cut_at = time.time()
    bed.cut("api", "worker2")
    time.sleep(CUT)
    bed.heal("api", "worker2")
    time.sleep(2 * EVERY)
    disable_schedule(bed, schedule)
    time.sleep(MAX_INTERVAL + 1)  # a beat that had not yet seen the change fires at most once more
    wait_for(lambda: all(done for *_, done in firings(bed, schedule)), timeout=60, message="every firing to run")
    rows = firings(bed, schedule)
    slots = [slot for slot, *_ in rows]
    expected = int((slots[-1] - slots[0]) / timedelta(seconds=EVERY)) + 1
    during = [slot for slot in slots if cut_at <= slot.timestamp() <= cut_at + CUT]
    record = Record(
        scenario=request.function.__name__.removeprefix("test_"),
        broker=bed.broker,
        jobs=sum(count for _, count, *_ in rows),
        lost=sum(1 for *_, done in rows if not done),
        twice=sum(1 for _, count, *_ in rows if count > 1),
        twice_allowed=0,
        recovery_s=round(max((created - slot).total_seconds() for slot, _, created, _ in rows), 1),
        bound_s=BOUND,
        note=f"{len(slots)} slots of 5 s ({len(during)} during the 2 min cut): firings per slot "
        f"{sorted({count for _, count, *_ in rows})}, {expected - len(slots)} missed; recovery = a firing's "
        "largest lateness",
    ).save()
    assert [count for _, count, *_ in rows] == [1] * len(rows)  # exactly 1 firing per slot
    assert len(slots) == expected, slots  # 0 missed slots
    assert len(during) >= CUT / EVERY - 1
    assert record.lost == 0 and record.recovery_s <= BOUND
