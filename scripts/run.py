"""Run the Procfile's processes (web, worker, beat, maintenance) for `make run`, and stop them cleanly on Ctrl-C.

This is honcho (`honcho start`) with two of its stop rules changed:

- honcho sends SIGTERM to each process *group*. A Celery prefork worker's pool processes are in
  its group, so they die on the spot instead of finishing in the worker's warm shutdown. Here
  only each process itself is signalled; uvicorn, the worker and beat stop their own children.
- honcho SIGKILLs whatever still runs 5 s later. Here it waits RUN_STOP_TIMEOUT seconds
  (default 60) so a warm shutdown can finish; only then are stragglers killed.

A process that ends because of the signal it was sent (uvicorn re-raises SIGTERM after its
graceful shutdown) counts as a clean stop, so a Ctrl-C that stops everything exits 0.
"""

import datetime
import errno
import os
import signal
import sys
import threading
import time
import urllib.request
from pathlib import Path

from honcho import environ, manager
from honcho.printer import Message, Printer

STOPPED_BY_SIGNAL = {0, -signal.SIGTERM, -signal.SIGINT, 128 + signal.SIGTERM, 128 + signal.SIGINT}


class SignalEachProcess:
    """honcho's process signaller, but SIGTERM goes to the process, not to its whole group."""

    def terminate(self, pid: int) -> None:
        self._send(os.kill, pid, signal.SIGTERM)

    def kill(self, pid: int) -> None:
        self._send(os.killpg, pid, signal.SIGKILL)  # last resort: the process and its children

    @staticmethod
    def _send(send, pid: int, signum: int) -> None:
        try:
            send(pid, signum)
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ESRCH):
                raise


def announce_when_ready(runner: manager.Manager, port: str, timeout: float = 120.0) -> None:
    """Once the web process answers, end the start-up output with where to go and how to log in."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        return
    lines = [
        "",
        "taskhub is up.",
        f"  admin     {base}/admin/",
        f"  API docs  {base}/api/docs/",
        *(f"  {line}" for line in os.environ.get("TASKHUB_BANNER", "").splitlines() if line),
        "  Ctrl-C stops them all.",
        "",
    ]
    text = "\n".join(lines) + "\n"
    runner.events.put(Message(type="line", data=text, time=datetime.datetime.now(), name="system", colour=None))


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    procfile = environ.parse_procfile((root / "Procfile").read_text())
    dotenv = root / ".env"
    app_env = environ.parse(dotenv.read_text()) if dotenv.is_file() else {}
    manager.KILL_WAIT = float(os.environ.get("RUN_STOP_TIMEOUT", "60"))
    runner = manager.Manager(Printer(sys.stdout))
    runner._procmgr = SignalEachProcess()
    for process in environ.expand_processes(procfile.processes, env=app_env):
        runner.add_process(process.name, process.cmd, quiet=process.quiet, env={**os.environ, **process.env}, cwd=root)
    port = os.environ.get("TASKHUB_PORT", "8000")
    threading.Thread(target=announce_when_ready, args=(runner, port), daemon=True).start()
    runner.loop()
    codes = [state.get("returncode") for state in runner._processes.values()]
    interrupted = runner.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    if interrupted and all(code in STOPPED_BY_SIGNAL for code in codes):
        print(f"taskhub stopped: {', '.join(runner._processes)} shut down cleanly.", flush=True)
        return 0
    return runner.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
