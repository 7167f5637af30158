"""What the many-hosts bed's scenarios create (jobs, schedules), read (rows, late changes, the door's
fenced-write lines) and record (a ``Record`` per scenario and broker: the table of docs/RELIABILITY.md)."""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from datetime import UTC, datetime

import psycopg

from taskhub.testing.hosts.bed import REPORT_DIR, Bed

SCHEDULE_SCRIPT = """
import json
from accounts.models import User
from jobs.schedules.services import job_schedule_create
# Every 5 s: a staff user's schedule (others wait at least JOB_SCHEDULE_MIN_INTERVAL_SECONDS).
owner, _ = User.objects.update_or_create(username="bed-staff", defaults={"is_staff": True, "max_running_jobs": 0})
task = job_schedule_create(owner=owner, name="every 5 s", task="long_running_task", kwargs={"seconds": 0},
                           interval={"every": 5, "period": "seconds"})
print(json.dumps(task.id))
"""

DISABLE_SCRIPT = """
import os
from jobs.schedules.services import job_schedule_set_enabled
job_schedule_set_enabled(periodic_task_id=int(os.environ["BED_SCHEDULE"]), enabled=False)
"""


def create_jobs(bed: Bed, count: int, *, seconds: int, max_retries: int = 1) -> list[str]:
    """``count`` long_running_task jobs created on the api host (one transaction, sent before its commit)."""
    from taskhub.testing.faults import CREATE_SCRIPT

    items = [{"celery_task_name": "long_running_task", "args": [seconds], "max_retries": max_retries}] * count
    spec = json.dumps({"items": items, "die_after_commit": False})
    out = bed.manage("shell", "-c", CREATE_SCRIPT, env={"FAULT_CREATE": spec})
    return json.loads(next(line for line in out.splitlines() if line.startswith("[")))


PAYLOAD_SCRIPT = """
import json, os, secrets
from accounts.models import User
from jobs.services.creation import job_create_bulk
owner, _ = User.objects.update_or_create(username="fault-suite", defaults={"max_running_jobs": 0})
spec = json.loads(os.environ["BED_PAYLOAD"])
# Random text (nothing on the way compresses it): echoed back by the task in its result.
items = [{"celery_task_name": "long_running_task", "args": [spec["seconds"]], "max_retries": 0,
          "kwargs": {"blob": secrets.token_urlsafe(spec["bytes"])[: spec["bytes"]]}} for _ in range(spec["count"])]
print(json.dumps([str(job.id) for job in job_create_bulk(owner=owner, items=items)]), flush=True)
"""


def create_payload_jobs(bed: Bed, count: int, *, seconds: int, payload: int) -> list[str]:
    """``count`` long_running_task jobs whose kwargs carry ``payload`` bytes of text (their result
    too: the task echoes its labels), created on the api host. No retry: a failure shows."""
    spec = json.dumps({"count": count, "seconds": seconds, "bytes": payload})
    out = bed.manage("shell", "-c", PAYLOAD_SCRIPT, env={"BED_PAYLOAD": spec})
    return json.loads(next(line for line in out.splitlines() if line.startswith("[")))


def create_schedule(bed: Bed) -> int:
    """A 5-second schedule (a staff user's), made on the api host; its periodic task's id."""
    out = bed.manage("shell", "-c", SCHEDULE_SCRIPT)
    return int(out.strip().splitlines()[-1])


def disable_schedule(bed: Bed, periodic_task_id: int) -> None:
    bed.manage("shell", "-c", DISABLE_SCRIPT, env={"BED_SCHEDULE": str(periodic_task_id)})


def query(bed: Bed, sql: str, params=()) -> list[tuple]:
    """Rows read by the test process through the cluster's Unix socket (outside the bed's network)."""
    with psycopg.connect(bed.observer_url, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


def late_changes(bed: Bed, ids: list[str], host: str) -> int:
    """Changes ``host``'s workers made to the jobs after they were re-queued away from them: timeline
    lines written by them after the job's last re-queue, and rows they still hold or finished."""
    by_host = f"worker celery@{host}:%"
    lines = query(
        bed,
        """SELECT count(*) FROM jobs_jobevent e
           WHERE e.job_id = ANY(%s::uuid[]) AND e.actor_label LIKE %s
             AND e.at > (SELECT max(r.at) FROM jobs_jobevent r WHERE r.job_id = e.job_id AND r.kind = 'requeued')""",
        [ids, by_host],
    )[0][0]
    rows = query(
        bed, "SELECT count(*) FROM jobs_job WHERE id = ANY(%s::uuid[]) AND worker LIKE %s", [ids, f"celery@{host}:%"]
    )
    return lines + rows[0][0]


FENCED = re.compile(r"Job ([0-9a-f-]{36}): fenced write refused: the (\w+) of attempt (\d+) changed 0 rows")


def fenced_writes(log: str) -> list[tuple[str, str]]:
    """(job id, write) of every late write the door refused, from a worker's log."""
    return [(m.group(1), m.group(2)) for m in FENCED.finditer(log)]


@dataclasses.dataclass
class Record:
    scenario: str
    broker: str
    jobs: int
    lost: int
    twice: int
    twice_allowed: int
    recovery_s: float
    bound_s: float
    fenced: int | None = None  # late writes refused by fencing (scenarios with a cut-off or paused worker)
    late_changes: int | None = None  # rows those late writes changed (must be 0)
    note: str = ""

    @classmethod
    def settled(cls, request, bed: Bed, *, jobs: list[str], rows: dict[str, dict], **figures) -> Record:
        """The record of a scenario whose ``jobs`` should all have succeeded, from their last ``rows``
        (``taskhub.testing.faults.Observer``): lost and ran-twice counted, the rest as given; saved."""
        return cls(
            scenario=request.function.__name__.removeprefix("test_"),
            broker=bed.broker,
            jobs=len(jobs),
            lost=sum(1 for i in jobs if rows.get(i, {}).get("status") != "succeeded"),
            twice=sum(1 for r in rows.values() if r["started"] > 1),
            **{"twice_allowed": 0, **figures},
        ).save()

    @property
    def command(self) -> str:
        return f"make test-hosts HOSTS_ARGS='-k \"{self.scenario} and {self.broker}\"'"

    def save(self) -> Record:
        REPORT_DIR.mkdir(parents=True, exist_ok=True)
        record = {**dataclasses.asdict(self), "command": self.command, "at": datetime.now(UTC).isoformat()}
        (REPORT_DIR / f"{self.scenario}-{self.broker}.json").write_text(json.dumps(record, indent=1))
        print(f"\nHOSTS {record}", file=sys.stderr)
        return self
