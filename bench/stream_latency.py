#!/usr/bin/env python
"""Live progress latency: from a worker's progress write to the server-sent event at an HTTP client.

A real worker runs ``bench.ticker`` jobs (bench/stream_tasks.py): each reports progress every 0.6 s,
stamped with the wall clock just before the write (above JOB_PROGRESS_MIN_INTERVAL, so no report is
held back by the throttle). The web process is uvicorn as the Procfile starts it
(``uvicorn taskhub.asgi:application --lifespan off``); one client thread per job follows
``GET /api/v1/jobs/{id}/stream/`` over real HTTP and notes when each event arrives. Latency = arrival
minus the stamp, over every progress event (the first state of each stream is left out: it is a
snapshot, not a change). Both ends run on this machine, so the clocks agree.

* redis: PostgreSQL + Redis (changes published on Redis pub/sub after commit);
* fallback: the embedded default, SQLite + Celery's filesystem transport, no Redis: the stream
  polls the row every JOB_STREAM_POLL_INTERVAL (0.5 s). Run in a child process of this script
  (settings load once per process), in a temporary TASKHUB_VAR_DIR.

Production defaults everywhere (heartbeat, throttle, poll interval, keep-alive). Own database
taskhub_bench_stream, own Redis db 5.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

CHILD = "--fallback-child"
TARGETS_MS = {"redis": 500, "fallback": 2000}
PRODUCTION = {  # .env.example's values, not the short ones WorkerProcess sets for tests
    "JOB_HEARTBEAT_INTERVAL": "5",
    "JOB_STALE_AFTER": "60",
    "JOB_CANCEL_GRACE_SECONDS": "30",
    "JOB_PROGRESS_MIN_INTERVAL": "0.5",
    "LOG_LEVEL": "WARNING",
}


def measure(*, jobs: int, steps: int, broker_url: str) -> dict:
    """Run ``jobs`` ticker jobs on a real worker and uvicorn; the latencies of their progress events (s)."""
    from rest_framework_simplejwt.tokens import AccessToken

    import bench.stream_tasks  # noqa: F401 - registers bench.ticker in this process's catalog
    from jobs.services.creation import job_create
    from taskhub.testing import AsgiServer, EventStream, WorkerProcess, child_database_url

    owner = common.make_user("stream-bench")
    token = str(AccessToken.for_user(owner))
    worker = WorkerProcess(broker_url=broker_url, concurrency=jobs, env=PRODUCTION)
    worker.args += ["-I", "bench.stream_tasks"]
    server = AsgiServer(env={"DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": broker_url, **PRODUCTION})
    latencies: list[float] = []
    lock = threading.Lock()

    def follow(job_id: str) -> None:
        stream = EventStream(server.port, f"/api/v1/jobs/{job_id}/stream/", token=token, timeout=60)
        first = True
        for event in stream.events():
            meta = (event.data or {}).get("progress_meta") or {}
            if event.kind == "state" and "t" in meta and not first and event.data["status"] == "running":
                with lock:
                    latencies.append(event.received - meta["t"])
            first = first and event.kind != "state"
        stream.close()

    worker.start(ready_timeout=60)
    server.start()
    try:
        kwargs = {"steps": steps}
        created = [job_create(owner=owner, celery_task_name="bench.ticker", kwargs=kwargs) for _ in range(jobs)]
        threads = [threading.Thread(target=follow, args=(str(job.id),)) for job in created]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=steps * 0.6 + 120)
        elapsed = time.perf_counter() - started
    except BaseException:
        print(worker.output()[-3000:], server.output()[-3000:], sep="\n", file=sys.stderr)
        raise
    finally:
        server.stop()
        worker.stop()
    return {"latencies": latencies, "elapsed": elapsed, "expected": jobs * steps}


def summary(mode: str, result: dict) -> list:
    values = sorted(result["latencies"])
    if not values:
        raise SystemExit(f"{mode}: no progress event arrived")
    p95 = values[min(len(values) - 1, round(0.95 * (len(values) - 1)))] * 1000
    return [
        mode,
        len(values),
        result["expected"],
        statistics.median(values) * 1000,
        p95,
        values[-1] * 1000,
        TARGETS_MS[mode],
        "ok" if p95 <= TARGETS_MS[mode] else "MISSED",
    ]


def run_fallback_child(jobs: int, steps: int) -> None:
    """In a fresh process with no DATABASE_URL and no broker: the embedded default."""
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3") and not settings.JOB_EVENTS_REDIS_URL
    call_command("migrate", verbosity=0, interactive=False)
    result = measure(jobs=jobs, steps=steps, broker_url=settings.CELERY_BROKER_URL)
    print("RESULT " + json.dumps(result))


def fallback(jobs: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="taskhub-bench-stream-") as var:
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "JOB_EVENTS_REDIS_URL")
        }
        env.update(TASKHUB_VAR_DIR=var, DEBUG="false", SECRET_KEY=common.SECRET_KEY, **PRODUCTION)
        done = subprocess.run(
            [sys.executable, __file__, CHILD, str(jobs), str(steps)],
            env=env,
            capture_output=True,
            text=True,
            timeout=steps * 0.6 + 300,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"fallback run failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
        line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
        return json.loads(line.removeprefix("RESULT "))


def main() -> int:
    args = common.parse_args(__doc__)
    jobs, steps = (4, 40) if args.quick else (8, 70)  # 160 or 560 progress events per mode
    with common.bench_environment(ENV):
        print(f"# {jobs} jobs x {steps} progress reports, 0.6 s apart, one stream each")
        redis_result = measure(jobs=jobs, steps=steps, broker_url=ENV.broker_url)
    fallback_result = fallback(jobs, steps)
    rows = [summary("redis", redis_result), summary("fallback", fallback_result)]
    common.print_table(
        "Progress write -> event at the client (ms)",
        ["mode", "events", "writes", "median", "p95", "max", "p95 target", ""],
        rows,
    )
    print(f"ratios: fallback/redis p95 {common.ratio(rows[1][4], rows[0][4])}")
    return 0 if all(row[-1] == "ok" for row in rows) else 1


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == CHILD:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "taskhub.settings")
    run_fallback_child(int(sys.argv[2]), int(sys.argv[3]))
elif __name__ == "__main__":
    ENV = common.configure(database="taskhub_bench_stream", redis_db=5)
    sys.exit(main())
