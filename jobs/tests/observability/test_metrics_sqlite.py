"""The metrics pass on the embedded default (SQLite): the same totals and stats' minutes as on
PostgreSQL from the same finished jobs (several tasks, queues, owners and outcomes, automatic,
worker-lost and manual retries, a row that commits late behind the watermark, jobs older than the
re-read window that only the stats' first build counts), counted once however often it runs.

The scenario is one script: run by ``manage.py shell`` on a SQLite file, and in this process on
the suite's PostgreSQL; both answers must be equal, and equal to what the rows' recipe says. (The
fast pass is PostgreSQL SQL; on SQLite it failed with ``OperationalError: unrecognized token ":"``
on the maintenance worker once a job had finished.)"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

SCENARIO = """
import json
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from jobs.models import JobEvent, JobStatsMinute, MetricTotal
from jobs.services.metrics import metrics_advance
from jobs.services.stats_rollup import COUNT_FIELDS, minute_of
from jobs.tests.factories import make

LONG, DATA = "jobs.tasks.common_tasks.long_running_task", "jobs.tasks.common_tasks.process_data"
# Every job finishes in one of three whole minutes: the answer does not depend on when it runs.
anchor = minute_of(timezone.now()) - timedelta(minutes=1)  # 1 to 2 minutes ago
owners = [User.objects.create(username=f"counted{i}", email=f"counted{i}@example.com") for i in (0, 1)]


def finished(status, at, *, owner=0, task=LONG, priority="normal", wait=1.0, run=None, rounds=(), **fields):
    started = None if run is None else at - timedelta(seconds=run)
    created = (started or at) - timedelta(seconds=wait)
    job = make(status, owner=owners[owner], celery_task_name=task, priority=priority, created_at=created,
               started_at=started, finished_at=at, **fields)
    for kind, before in rounds:  # a retry line ``before`` seconds before it started (or finished)
        JobEvent.objects.create(job=job, kind=kind, at=(started or at) - timedelta(seconds=before))
    return job


def jobs_of(minute, second=0):
    at = lambda n: minute + timedelta(seconds=second + n)
    finished("succeeded", at(0), wait=0.2, run=0.03)
    finished("succeeded", at(1), wait=4, run=0.7, priority="low")
    finished("succeeded", at(2), owner=1, task=DATA, wait=100, run=3, priority="urgent")
    finished("succeeded", at(3), wait=10, run=40, rounds=[("retry_scheduled", 2.5)])  # waited 2.5 s (a bound)
    finished("failed", at(4), task=DATA, wait=20, run=8, error_type="ValueError", rounds=[("retry_scheduled", 9)])
    finished("failed", at(5), owner=1, wait=60, run=0.25, error_type="KeyError", rounds=[("requeued", 30)])
    finished("failed", at(6), run=30000, error_type="")  # past every bound; no exception class: "unknown"
    finished("revoked", at(7), task=DATA)  # cancelled while pending: no wait, no run
    finished("revoked", at(8), owner=1, run=2, priority="high")
    finished("succeeded", at(9), run=5, rounds=[("retried", -1)])  # retried by an operator after it ran
    finished("succeeded", at(10), owner=1, task=DATA, wait=40, run=12.5, rounds=[("requeued", 30), ("retried", 1)])


answer = {"counted": []}
jobs_of(anchor - timedelta(minutes=8))  # before the first pass's window: the stats' build only
jobs_of(anchor - timedelta(minutes=2), second=30)
answer["counted"].append(metrics_advance(until_done=True))  # the first pass: builds the stats too
jobs_of(anchor - timedelta(minutes=1), second=20)
jobs_of(anchor - timedelta(minutes=2))  # commits late, behind the watermark
answer["counted"].append(metrics_advance())  # a scrape: one batch
answer["counted"].append(metrics_advance(stats_only=True))  # a stats request
jobs_of(anchor - timedelta(minutes=1), second=40)
answer["counted"].append(metrics_advance(batch=3, until_done=True))  # beat's, reading on in small batches
answer["counted"].append(metrics_advance(until_done=True))  # nothing new
answer["counted"].append(metrics_advance())

answer["totals"] = {
    "|".join((row.metric, row.task, row.queue, row.status, row.label)): round(row.value, 6)
    for row in MetricTotal.objects.all()
}
seconds = lambda value: None if value is None else round(value.total_seconds(), 6)
answer["minutes"] = {
    "|".join((str(int((row.minute - anchor).total_seconds() // 60)), row.owner.username, row.queue, row.task)): [
        *(getattr(row, field) for field in COUNT_FIELDS), seconds(row.run_min), seconds(row.run_max)
    ]
    for row in JobStatsMinute.objects.select_related("owner")
}
print("RESULT " + json.dumps(answer, sort_keys=True))
"""

JOBS_PER_ROUND = 11
ROUNDS = 4  # counted by the passes
TASK = "jobs.tasks.common_tasks.long_running_task"
DATA = "jobs.tasks.common_tasks.process_data"


def on_sqlite(tmp_path) -> dict:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
    }
    env.update(TASKHUB_VAR_DIR=str(tmp_path), DEBUG="false", SECRET_KEY="embedded-" + "k" * 50)
    for args in (["migrate", "--noinput", "-v0"], ["shell", "-v0", "-c", SCENARIO]):
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-3000:]
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    return json.loads(done.stdout.split("RESULT ", 1)[1])


def on_postgresql(capsys) -> dict:
    exec(compile(SCENARIO, "scenario", "exec"), {})
    return json.loads(capsys.readouterr().out.split("RESULT ", 1)[1])


def test_the_metrics_pass_counts_the_same_on_sqlite_as_on_postgresql(tmp_path, capsys):
    sqlite = on_sqlite(tmp_path)
    postgresql = on_postgresql(capsys)

    # What the recipe says: 11 jobs and 6 retry lines a round; four rounds counted by the passes (the
    # round before the first pass's window is not: counters start at the first pass), five in the stats.
    counted = [{"jobs": 11, "retries": 6}, {"jobs": 22, "retries": 12}, {"jobs": 0}]
    counted += [{"jobs": 11, "retries": 6}, {"jobs": 0, "retries": 0}, {"jobs": 0, "retries": 0}]
    assert postgresql["counted"] == counted
    totals = postgresql["totals"]
    finished = {key: value for key, value in totals.items() if key.startswith("finished|")}
    assert sum(finished.values()) == ROUNDS * JOBS_PER_ROUND
    assert finished[f"finished|{TASK}|default|succeeded|"] == ROUNDS * 3
    assert finished[f"finished|{DATA}|high_priority|succeeded|"] == ROUNDS
    assert totals[f"failures|{TASK}|||unknown"] == ROUNDS
    assert totals[f"failures|{DATA}|||ValueError"] == ROUNDS
    for task, kind in ((TASK, "automatic"), (TASK, "worker_lost"), (TASK, "manual"), (DATA, "manual")):
        assert totals[f"retries|{task}|||{kind}"] == ROUNDS, kind
    assert totals[f"wait_seconds_bucket|{TASK}|||0.25"] == ROUNDS
    assert totals[f"wait_seconds_bucket|{TASK}|||2.5"] == ROUNDS  # 2.5 s after its retry line: le="2.5"
    assert totals[f"wait_seconds_sum|{DATA}|||"] == pytest.approx(ROUNDS * (100 + 9 + 1))
    assert totals[f"run_seconds_bucket|{TASK}|||0.25"] == ROUNDS
    assert totals[f"run_seconds_bucket|{TASK}|||+Inf"] == ROUNDS
    assert totals[f"run_seconds_sum|{TASK}|||"] == pytest.approx(ROUNDS * (0.03 + 0.7 + 40 + 0.25 + 30000 + 2))
    minutes = postgresql["minutes"]
    assert sum(sum(counts[:3]) for counts in minutes.values()) == (ROUNDS + 1) * JOBS_PER_ROUND
    assert {key.split("|")[0] for key in minutes} == {"-8", "-2", "-1"}

    assert sqlite == postgresql
