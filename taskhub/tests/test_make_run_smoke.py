"""Smoke test of the embedded default as `make run` starts it: SQLite + the filesystem broker, the
real web, worker, beat and maintenance processes (scripts/run.py), on a free port.

A job of every catalog task, a schedule's firing, a cancel, an argument search with a text
value and the stats (the metrics pass on SQLite); then Ctrl-C (SIGINT to the foreground process
group) with stdout to a file, and with stdout piped into a reader that exits early (`| head -c 100`).
Every process must be gone, the exit clean, and the whole output free of tracebacks and warnings."""

import json
import os
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from taskhub.testing import wait_for
from taskhub.tests.test_make_run import free_port

pytestmark = [pytest.mark.worker, pytest.mark.timeout(300)]

TRACEBACK = "Traceback (most recent call last)"
WARNING = re.compile(r"warning", re.IGNORECASE)
STOP_BOUND = 90  # seconds from SIGINT to every process gone (a warm shutdown finishes the running jobs)

# Valid arguments and short durations for every built-in catalog task (the catalog's name).
ARGUMENTS = {
    "jobs.tasks.common_tasks.blocking_sleep": {"kwargs": {"seconds": 1}},
    "jobs.tasks.common_tasks.flaky_task": {"kwargs": {"fail_times": 1}},  # one retry, then success
    "jobs.tasks.common_tasks.gather": {"kwargs": {"label": "smoke"}},  # outside a workflow: no parents
    "jobs.tasks.common_tasks.long_running_task": {"args": [1], "kwargs": {"param": "value"}},  # README's example
    "jobs.tasks.common_tasks.process_data": {"kwargs": {"records": [{"a": 1}, {"a": 3}], "group_by": None}},
    "jobs.tasks.high_priority_tasks.send_notification": {"kwargs": {"to": ["admin@example.com"], "subject": "hi"}},
    "jobs.tasks.model_tasks.train_model": {"kwargs": {"features": [[0], [1], [2]], "targets": [0, 1, 2], "epochs": 3}},
    "jobs.tasks.standard_tasks.run_standard_task": {
        "kwargs": {"task": "jobs.tests.standard_tasks.add", "args": [2, 3]}
    },
}
FINISHED = {"succeeded", "failed", "revoked"}


def start(tmp_path, port: int, stdout, command: list[str] | None = None) -> subprocess.Popen:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "SECRET_KEY", "DEBUG")
    }
    env.update(TASKHUB_VAR_DIR=str(tmp_path / "var"), TASKHUB_ADMIN_PASSWORD="", MAKEFLAGS="")
    return subprocess.Popen(
        command or ["make", "--no-print-directory", "run", f"PORT={port}"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=stdout,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )


def process_tree(root: int) -> dict[int, str]:
    """Every live descendant of ``root`` (and itself), with its command line: web, worker, beat and
    maintenance run in sessions of their own, so the process group alone would miss them."""
    parents, commands = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            command = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            parents[int(entry)] = int(fields[1])
            commands[int(entry)] = command.strip()
    tree, frontier = {}, [root]
    while frontier:
        pid = frontier.pop()
        if pid in commands:
            tree[pid] = commands[pid]
        frontier += [child for child, parent in parents.items() if parent == pid]
    return tree


def parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[1])


def alive(pids) -> dict[int, str]:
    still = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat[stat.rindex(")") + 2] != "Z":
            still[pid] = stat
    return still


class Api:
    def __init__(self, port: int, username: str, password: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.token = self.call("POST", "/api/v1/auth/token/", {"username": username, "password": password})[1]["access"]

    def call(self, method: str, path: str, body=None) -> tuple[int, dict]:
        request = urllib.request.Request(
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.token}"} if hasattr(self, "token") else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def ok(self, method: str, path: str, body=None) -> dict:
        status, data = self.call(method, path, body)
        assert status in (200, 201, 202), (method, path, status, data)
        return data

    def job(self, job_id) -> dict:
        return self.ok("GET", f"/api/v1/jobs/{job_id}/")


def wait_up(port: int, timeout: float = 120) -> None:
    def answers():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    wait_for(answers, timeout=timeout, interval=0.5, message="the web process")


def exercise(api: Api) -> None:
    """A job of every catalog task, a schedule's firing, a cancel, a text argument search and a
    workflow (fan-out of two, fan-in)."""
    catalog = {entry["name"] for entry in api.call("GET", "/api/v1/task-catalog/")[1]}
    assert catalog == set(ARGUMENTS), "a catalog task without arguments here (or gone): " + str(
        catalog ^ set(ARGUMENTS)
    )
    jobs = {
        name: api.ok("POST", "/api/v1/jobs/", {"celery_task_name": name, **body})["id"]
        for name, body in ARGUMENTS.items()
    }
    workflow = api.ok(
        "POST",
        "/api/v1/workflows/",
        {
            "name": "smoke",
            "steps": [
                {"id": "a", "task": "long_running_task", "kwargs": {"seconds": 0}},
                {"id": "b", "task": "long_running_task", "kwargs": {"seconds": 0}},
                {"id": "merge", "task": "gather", "after": ["a", "b"]},
            ],
        },
    )["id"]
    to_cancel = api.ok("POST", "/api/v1/jobs/", {"celery_task_name": "long_running_task", "args": [120]})["id"]
    wait_for(lambda: api.job(to_cancel)["status"] == "running", timeout=60, interval=0.5, message="the job to cancel")
    api.ok("POST", f"/api/v1/jobs/{to_cancel}/cancel/")
    schedule = api.ok(
        "POST",
        "/api/v1/schedules/",
        {
            "name": "smoke",
            "task": "long_running_task",
            "kwargs": {"seconds": 0},
            "interval": {"every": 5, "period": "seconds"},
        },
    )["id"]
    fired = wait_for(
        lambda: api.ok("GET", f"/api/v1/jobs/?schedule={schedule}")["results"],
        timeout=60,
        interval=1,
        message="the schedule to fire",
    )
    api.ok("POST", f"/api/v1/schedules/{schedule}/disable/")
    found = api.ok("GET", "/api/v1/jobs/?kwarg=param:value")["results"]
    assert [job["id"] for job in found] == [jobs["jobs.tasks.common_tasks.long_running_task"]]

    every = [*jobs.values(), to_cancel, *(job["id"] for job in fired)]
    wait_for(
        lambda: all(api.job(job_id)["status"] in FINISHED for job_id in every),
        timeout=120,
        interval=1,
        message="every job to finish",
    )
    statuses = {name: api.job(job_id)["status"] for name, job_id in jobs.items()}
    assert statuses == dict.fromkeys(ARGUMENTS, "succeeded"), statuses
    assert api.job(to_cancel)["status"] == "revoked"
    assert {api.job(job["id"])["status"] for job in fired} == {"succeeded"}
    # The stats first advance the metrics pass (on SQLite its ORM path) in the web process, as beat's
    # rollup_metrics does on the maintenance worker every minute (this run may end before its first).
    assert api.ok("GET", "/api/v1/stats/")["last_hour"]["finished"] >= len(every)
    done = wait_for(
        lambda: (w := api.ok("GET", f"/api/v1/workflows/{workflow}/"))["status"] == "succeeded" and w,
        timeout=60,
        interval=1,
        message="the workflow to succeed",
    )
    assert api.job(done["steps"][2]["job"])["result"]["count"] == 2


def ctrl_c_and_wait(process: subprocess.Popen) -> tuple[dict[int, str], int, dict[int, str]]:
    """SIGINT to the foreground group, as a terminal's Ctrl-C; the processes that ran and those left."""
    tree = process_tree(process.pid)
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.wait(timeout=STOP_BOUND)
    except subprocess.TimeoutExpired:
        code = None
    deadline = time.monotonic() + 10
    while alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(tree)
    for pid in left:  # leave nothing running behind a failed test
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return tree, code, {pid: tree[pid] for pid in left}


# Celery's one warning about the environment, not about taskhub: a worker started as root (the
# CI container's user). It is counted as a warning whenever the suite runs as another user.
ROOT_WARNING = ("SecurityWarning: You're running the worker with superuser privileges", "_warn_or_raise_security_error")


def count(text: str) -> tuple[int, list[str]]:
    warnings = [line for line in text.splitlines() if WARNING.search(line)]
    if os.geteuid() == 0:
        warnings = [line for line in warnings if not any(marker in line for marker in ROOT_WARNING)]
    return text.count(TRACEBACK), warnings


def test_make_run_smoke_every_task_then_ctrl_c_with_a_file_and_a_closed_pipe(tmp_path):
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("w") as handle:
        process = start(tmp_path, port, handle)
    try:
        wait_for(lambda: "Ctrl-C stops them all." in log.read_text(), timeout=120, message="the banner")
        password = (tmp_path / "var" / "admin_password").read_text().strip()
        exercise(Api(port, "admin", password))
    finally:
        tree, code, left = ctrl_c_and_wait(process)
    output = log.read_text()
    tracebacks, warnings = count(output)
    print(
        f"\n(a) stdout to a file: {len(tree)} processes, exit {code}, {tracebacks} tracebacks, {len(warnings)} warnings"
    )
    assert not left, f"still running after Ctrl-C: {left}"
    assert code in (0, -signal.SIGINT), output[-3000:]
    assert "taskhub stopped: web.1, worker.1, beat.1, maintenance.1 shut down cleanly." in output, output[-3000:]
    assert len(tree) >= 9, tree  # make, run.py, 4 wrappers, web, worker (+ pool), beat, maintenance
    assert tracebacks == 0, output
    assert warnings == [], warnings

    # (b) `make run | head -c 100`: the reader is gone after the first line; the app still runs and stops.
    # A shell runs the pipeline so that make and head share its process group; its trap only keeps
    # it alive after the Ctrl-C to write make's exit status.
    port = free_port()
    errors, status = tmp_path / "run-b.err", tmp_path / "run-b.status"
    pipeline = (
        f"trap : INT; make --no-print-directory run PORT={port} 2>{errors} | head -c 100 >{tmp_path / 'run-b.out'};"
        f" echo ${{PIPESTATUS[0]}} ${{PIPESTATUS[1]}} >{status}"
    )
    process = start(tmp_path, port, subprocess.DEVNULL, command=["bash", "-c", pipeline])
    try:
        wait_up(port)
        wait_for(lambda: (tmp_path / "run-b.out").stat().st_size == 100, timeout=30, message="head to read 100 bytes")
        head_gone = wait_for(
            lambda: not any(command.startswith("head ") for command in process_tree(process.pid).values()),
            timeout=30,
            message="head to exit",
        )
        api = Api(port, "admin", password)
        job = api.ok("POST", "/api/v1/jobs/", {"celery_task_name": "long_running_task", "args": [1]})["id"]
        wait_for(
            lambda: api.job(job)["status"] in FINISHED, timeout=60, interval=0.5, message="a job after the reader left"
        )
        assert head_gone and api.job(job)["status"] == "succeeded"
    finally:
        tree, code, left = ctrl_c_and_wait(process)
    output = errors.read_text()
    tracebacks, warnings = count(output)
    make_code, head_code = status.read_text().split() if status.exists() else ("(still running)", "?")
    print(
        f"(b) stdout into head -c 100: {len(tree)} processes, make exit {make_code}, "
        f"{tracebacks} tracebacks, {len(warnings)} warnings"
    )
    assert not left, f"still running after Ctrl-C: {left}\n{output}"
    assert code == 0 and make_code in ("0", "130") and head_code == "0", (code, make_code, head_code, output)
    assert tracebacks == 0 and warnings == [], output
    assert "make: ***" not in output and "Error" not in output, output


def test_sigterm_to_run_py_stops_everything(tmp_path):
    """A process manager (systemd, a container runtime, kill) stops scripts/run.py with SIGTERM:
    web, worker, beat and maintenance stop as on Ctrl-C, and make returns."""
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("w") as handle:
        process = start(tmp_path, port, handle)
    try:
        wait_for(lambda: "Ctrl-C stops them all." in log.read_text(), timeout=120, message="the banner")
        tree = process_tree(process.pid)
        (run_py,) = [pid for pid in tree if parent(pid) == process.pid]  # make's child; honcho's wrappers are its
        os.kill(run_py, signal.SIGTERM)
        code = process.wait(timeout=STOP_BOUND)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(tree) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {pid: tree[pid] for pid in alive(tree)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    output = log.read_text()
    assert not left, f"still running after SIGTERM: {left}"
    assert code == 0, output[-3000:]
    assert "SIGTERM received" in output
    assert "taskhub stopped: web.1, worker.1, beat.1, maintenance.1 shut down cleanly." in output, output[-3000:]
    assert count(output) == (0, []), output
