#!/usr/bin/env python
"""Where a worker's time goes while it runs jobs: py-spy samples of its pool processes.

    .venv/bin/pip install py-spy    # a profiler, not a dependency of taskhub
    .venv/bin/python bench/profile_worker.py [-n 4000] [--seconds 12] [--live-off] [--wall]
    .venv/bin/python bench/profile_worker.py --cprofile [-n 2000] [--live-off]   # without py-spy

The worker runs as the Procfile starts it (production JOB_* defaults) on this script's own
database and Redis db 1 (throughput.py's: do not run both at once); ``n`` jobs of
``long_running_task(seconds=0)`` are queued, then py-spy records the pool processes for
``seconds`` (only samples holding the GIL, i.e. Python running on a CPU, unless ``--wall``).
With ``--cprofile`` (no py-spy needed) the worker runs under cProfile instead (``bench.cprofile_app``:
every pool process, and the main process, the consumer), for the whole run of ``n`` jobs; the
functions are printed by cumulative time per process group, with the calls per job.
Printed: the functions with the largest share of samples, inclusive and self. Not part of
``make bench``.
"""

from __future__ import annotations

import collections
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_profile", redis_db=1)
JOB = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}
SITE = re.compile(r" \(/.*?/site-packages/")


def summarize(files: list[Path], top: int) -> None:
    inclusive, own, total = collections.Counter(), collections.Counter(), 0
    for file in files:
        for line in file.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not stack:
                continue
            frames = [SITE.sub(" (", re.sub(r":\d+\)$", ")", frame)) for frame in stack.split(";")]
            # From Celery's tracer down (the process start-up frames above it are in every sample).
            start = next((i for i, frame in enumerate(frames) if frame.startswith("build_tracer")), None)
            frames = frames[start:] if start is not None else ["(outside a task: the pool's loop, messages)"]
            total += int(count)
            for frame in set(frames):
                inclusive[frame] += int(count)
            own[frames[-1]] += int(count)
    print(f"\n{total} samples; inclusive share (the function and what it calls):")
    for frame, count in inclusive.most_common(top):
        print(f"  {100 * count / total:5.1f}%  {frame[:140]}")
    print("\nself share (the function's own code):")
    for frame, count in own.most_common(top // 2):
        print(f"  {100 * count / total:5.1f}%  {frame[:140]}")


def main() -> int:
    def options(parser):
        parser.add_argument("-n", type=int, default=4000, help="jobs queued")
        parser.add_argument("--seconds", type=int, default=12, help="how long to sample")
        parser.add_argument("--live-off", action="store_true", help="JOB_EVENTS_REDIS_URL=none")
        parser.add_argument("--wall", action="store_true", help="sample waiting threads too (wall clock)")
        parser.add_argument("--top", type=int, default=60)
        parser.add_argument("--cprofile", action="store_true", help="cProfile instead of py-spy")

    args = common.parse_args(__doc__, options)
    if args.cprofile:
        return profile_with_cprofile(args)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install py-spy")
    env = {"WORKER_CONCURRENCY": "2", "JOB_HEARTBEAT_INTERVAL": "5", "JOB_PROGRESS_MIN_INTERVAL": "0.5"}
    if args.live_off:
        env["JOB_EVENTS_REDIS_URL"] = "none"
    out = Path(tempfile.mkdtemp(prefix="taskhub-profile-"))
    with common.bench_environment(ENV):
        from jobs.models import Job, JobStatus
        from jobs.services.creation import job_create_bulk

        owner = common.make_user("bench-profile")
        worker = common.Process(common.procfile_command("worker"), env=env, label="worker")
        worker.start(ready=lambda output: " ready." in output)
        try:
            job_create_bulk(owner=owner, items=[JOB] * 50)
            while Job.objects.filter(status=JobStatus.SUCCEEDED).count() < 50:
                time.sleep(0.05)
            for first in range(0, args.n, 500):
                job_create_bulk(owner=owner, items=[JOB] * min(500, args.n - first))
            pool = worker.pids()[1:]
            mode = [] if args.wall else ["--gil"]
            record = [spy, "record", "-r", "200", "-d", str(args.seconds), "-f", "raw", "--nonblocking", *mode]
            spies = [
                subprocess.Popen(
                    [*record, "-p", str(pid), "-o", str(out / f"{pid}.txt")],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for pid in pool
            ]
            done_before, started = Job.objects.filter(status=JobStatus.SUCCEEDED).count(), time.perf_counter()
            for process in spies:
                process.wait()
            rate = (Job.objects.filter(status=JobStatus.SUCCEEDED).count() - done_before) / (
                time.perf_counter() - started
            )
        finally:
            worker.stop()
            worker.close()
    print(f"# {rate:.0f} jobs/s while sampled (py-spy slows the processes down); pool processes {pool}")
    summarize(sorted(out.glob("*.txt")), args.top)
    shutil.rmtree(out, ignore_errors=True)
    return 0


def profile_with_cprofile(args) -> int:
    import pstats

    out = Path(tempfile.mkdtemp(prefix="taskhub-cprofile-"))
    env = {"WORKER_CONCURRENCY": "2", "JOB_HEARTBEAT_INTERVAL": "5", "JOB_PROGRESS_MIN_INTERVAL": "0.5"}
    env |= {"CPROFILE_DIR": str(out), "JOB_EVENTS_REDIS_URL": "none" if args.live_off else None}
    command = common.procfile_command("worker").replace("exec celery -A taskhub", "exec celery -A bench.cprofile_app")
    with common.bench_environment(ENV):
        from jobs.models import Job, JobStatus
        from jobs.services.creation import job_create_bulk

        owner = common.make_user("bench-profile")
        worker = common.Process(command, env=env, label="worker")
        worker.start(ready=lambda output: " ready." in output)
        try:
            for first in range(0, args.n, 500):
                job_create_bulk(owner=owner, items=[JOB] * min(500, args.n - first))
            deadline = time.monotonic() + 600
            while Job.objects.filter(status=JobStatus.SUCCEEDED).count() < args.n and time.monotonic() < deadline:
                time.sleep(0.2)
            done = Job.objects.filter(status=JobStatus.SUCCEEDED).count()
        finally:
            worker.stop()
            worker.close()
    print(f"# {done} of {args.n} jobs succeeded under cProfile; figures per job (CPU ms, calls)")
    for label, pattern in (("pool processes", "pool-*.prof"), ("main process (consumer)", "main.prof")):
        files = sorted(str(file) for file in out.glob(pattern))
        if not files:
            print(f"\n{label}: no profile written")
            continue
        stats = pstats.Stats(*files)
        rows = sorted(stats.stats.items(), key=lambda item: item[1][3], reverse=True)[: args.top]
        print(f"\n{label} ({len(files)} file(s)): CPU ms per job: inclusive, own; calls per job")
        for (file, line, name), (_, calls, own, cumulative, _) in rows:
            where = SITE.sub(" (", f" ({file}") if "site-packages" in file else f" ({Path(file).name}:{line}"
            per_job = (1000 * cumulative / max(done, 1), 1000 * own / max(done, 1), calls / max(done, 1))
            print("  {:7.3f} {:7.3f} {:7.2f}  ".format(*per_job) + f"{name}{where[:90]})")
    shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
