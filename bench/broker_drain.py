"""The embedded broker's drain rate: messages per second a worker takes off Celery's filesystem
transport, and how long a new job waits behind the messages of cancelled jobs.

    python bench/broker_drain.py [--quick] [-n 50]

On the embedded default (a SQLite file and the filesystem transport in a temporary var/, no
services), ``n`` jobs are created and cancelled before any worker runs: their messages stay in
the broker folder. Then one new 1-second job is created, and a worker started exactly as the
Procfile's ``worker`` line drains the folder. Run once with kombu's polling interval (1 s, the
value before BROKER_POLLING_INTERVAL existed) and once with taskhub's default; printed: the
seconds to drain, messages/s, the new job's wait (worker ready -> job started) and the idle
worker's CPU (its processes, over 10 s with nothing to do, what the shorter interval costs).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Process, cpu_seconds, load_average, print_table, procfile_command

KOMBU_DEFAULT = 1.0  # kombu.transport.virtual.Transport.polling_interval
IDLE_SECONDS = 10.0

BACKLOG = """
import json
from accounts.models import User
from jobs.services.creation import job_create
from jobs.services.operations import job_cancel
owner = User.objects.create(username="drain", email="drain@example.com", is_staff=True)
for _ in range({n}):
    job_cancel(job_id=job_create(owner=owner, celery_task_name="long_running_task", args=[5]).id, by=owner)
print("NEW " + str(job_create(owner=owner, celery_task_name="long_running_task", args=[1]).id))
"""
STARTED = """
from jobs.models import Job
job = Job.objects.get(id="{job_id}")
print("STARTED " + (job.started_at.isoformat() if job.started_at else "") + " " + job.status)
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode:
        raise SystemExit(done.stderr[-3000:])
    return done.stdout


def messages(queue: Path) -> int:
    return sum(1 for path in queue.iterdir() if path.suffix == ".msg") if queue.is_dir() else 0


# The embedded default is what is left without these: SQLite and the filesystem broker in var/. The
# caller's (make bench exports the test suite's PostgreSQL and Redis) are taken out of every process.
SERVICES = ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL", "BROKER_POLLING_INTERVAL")


def embedded_env(var: str, interval: float | None) -> dict[str, str]:
    """This process's environment on the embedded default in ``var``."""
    env = {name: value for name, value in os.environ.items() if name not in SERVICES}
    env.update(TASKHUB_VAR_DIR=var, DEBUG="false", SECRET_KEY="bench-" + "k" * 50, PYTHONUNBUFFERED="1")
    if interval is not None:
        env["BROKER_POLLING_INTERVAL"] = str(interval)
    return env


def worker_env(env: dict[str, str]) -> dict[str, str | None]:
    """What the worker's ``Process`` adds to this process's environment: ``env``, and None (removed)
    for the services ``env`` left out. Without them the worker kept make bench's DATABASE_URL: it
    looked for a PostgreSQL database while the jobs were in SQLite, and nothing drained for 600 s."""
    removed: dict[str, str | None] = {name: None for name in SERVICES if name not in env}
    return {**removed, **{k: v for k, v in env.items() if k != "PATH"}, "WORKER_CONCURRENCY": "2"}


def measure(n: int, interval: float | None) -> dict:
    """One run; ``interval`` None: taskhub's default (BROKER_POLLING_INTERVAL unset)."""
    with tempfile.TemporaryDirectory(prefix="taskhub-bench-drain-") as var:
        env = embedded_env(var, interval)
        manage(env, "migrate", "--noinput", "-v0")
        job_id = manage(env, "shell", "-v0", "-c", BACKLOG.format(n=n)).split("NEW ", 1)[1].split()[0]
        queue = Path(var) / "broker" / "queue"
        queued = messages(queue)
        worker = Process(
            procfile_command("worker"),  # Process puts the virtualenv's bin first on PATH, as make run
            env=worker_env(env),
            label="drain-worker",
        )
        worker.start(ready=lambda text: " ready." in text, timeout=120)
        ready = time.time()
        try:
            deadline = time.monotonic() + 600
            while messages(queue) and time.monotonic() < deadline:
                time.sleep(0.05)
            drained = time.time() - ready
            status = ""
            while time.monotonic() < deadline:
                line = manage(env, "shell", "-v0", "-c", STARTED.format(job_id=job_id)).split("STARTED ", 1)[1]
                started, status = line.split()[0], line.split()[-1]
                if status == "succeeded":
                    break
                time.sleep(0.5)
            if status != "succeeded":
                raise SystemExit(f"the new job is {status or 'not found'} after 600 s; worker log: {worker.log}")
            waited = datetime.fromisoformat(started).timestamp() - ready
            time.sleep(2)  # the last job's acknowledgements
            pids = worker.pids()
            before = cpu_seconds(pids)
            time.sleep(IDLE_SECONDS)
            after = cpu_seconds(pids)
            idle_cpu = sum(after[pid] - before.get(pid, after[pid]) for pid in after) / IDLE_SECONDS * 100
        finally:
            worker.close()
    return {"queued": queued, "drained": drained, "waited": waited, "idle_cpu": idle_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 cancelled jobs instead of 50")
    parser.add_argument("-n", type=int, default=None, help="cancelled jobs in front of the new one")
    args = parser.parse_args()
    n = args.n or (20 if args.quick else 50)
    print(f"broker drain: {n} cancelled jobs, then a new 1 s job; load average {load_average()}")
    rows, results = [], {}
    for label, interval in (("kombu default (before)", KOMBU_DEFAULT), ("taskhub default", None)):
        result = measure(n, interval)
        results[label] = result
        shown = (
            KOMBU_DEFAULT
            if interval is not None
            else json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        "-c",
                        "from taskhub.settings.workers import BROKER_POLLING_INTERVAL as v; print(v)",
                    ],
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    env={**os.environ, "DEBUG": "true"},
                    check=False,
                ).stdout.strip()
                or "null"
            )
        )
        rows.append(
            [
                label,
                shown,
                result["queued"],
                f"{result['drained']:.1f}",
                f"{result['queued'] / max(result['drained'], 1e-6):.1f}",
                f"{result['waited']:.1f}",
                f"{result['idle_cpu']:.1f}",
            ]
        )
    print_table(
        "filesystem transport",
        ["polling", "interval s", "messages", "drain s", "messages/s", "new job waited s", "idle worker CPU %"],
        rows,
    )
    before, after = results["kombu default (before)"], results["taskhub default"]
    print(
        f"ratios: messages/s default/kombu = {(before['drained'] / max(after['drained'], 1e-6)):.1f}x, "
        f"new job wait kombu/default = {(before['waited'] / max(after['waited'], 1e-6)):.1f}x"
    )


if __name__ == "__main__":
    main()
