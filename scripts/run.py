"""Run the Procfile's processes (web, worker, beat, maintenance) for `make run`, and stop them cleanly on Ctrl-C.

This is honcho (`honcho start`) with two of its stop rules changed:

- honcho sends SIGTERM to each process *group*. A Celery prefork worker's pool processes are in
  its group, so they die on the spot instead of finishing in the worker's warm shutdown. Here
  only each process itself is signalled; uvicorn, the worker and beat stop their own children.
- honcho SIGKILLs whatever still runs 5 s later. Here it waits RUN_STOP_TIMEOUT seconds
  (default 60) so a warm shutdown can finish; only then are stragglers killed.

A process that ends because of the signal it was sent (uvicorn re-raises SIGTERM after its
graceful shutdown) counts as a clean stop, so a Ctrl-C that stops everything exits 0.

And two rules of its own:

- The output may go away while it runs: `make run | tee run.log` and Ctrl-C kills tee,
  `make run | head` stops reading. Writing to a closed stdout then drops the line instead of
  raising (honcho died of BrokenPipeError while printing "SIGINT received", before stopping
  anything); the processes are stopped all the same. SIGTERM stops them as Ctrl-C does.
- A second Ctrl-C (or SIGTERM) while they stop kills what still runs, as a second Ctrl-C
  makes a Celery worker's warm shutdown a cold one.
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


class SafePrinter(Printer):
    """honcho's printer, but a closed or broken stdout never raises: the lines are dropped.

    A signal handler prints too ("SIGINT received"); when it interrupts a write in progress, its
    line waits for that write to end (a nested write into the same buffer would raise)."""

    def __init__(self, output) -> None:
        super().__init__(output)
        self.closed = False
        self._busy = False
        self._waiting: list[Message] = []

    def write(self, message: Message) -> None:
        if self._busy:
            self._waiting.append(message)
            return
        self._busy = True
        try:
            self._write(message)
            while self._waiting:
                self._write(self._waiting.pop(0))
        finally:
            self._busy = False

    def _write(self, message: Message) -> None:
        if self.closed:
            return
        try:
            super().write(message)
        except (OSError, ValueError):  # EPIPE, EIO (the terminal went away), or stdout closed
            self.closed = True
            silence_stdout()


def silence_stdout() -> None:
    """From now on stdout goes nowhere, so what is still buffered or printed cannot raise."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


class RunManager(manager.Manager):
    """honcho's manager; a second stop request (Ctrl-C, SIGTERM) kills what still runs."""

    stop_requests = 0

    def _start(self) -> None:
        # loop() has just installed honcho's handlers; these replace them (same first stop).
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        super()._start()

    def _on_signal(self, signum: int, frame) -> None:
        self.stop_requests += 1
        self._system_print(f"{manager.SIGNALS[signum]['name']} received\n")
        self.returncode = manager.SIGNALS[signum]["rc"]
        if self.stop_requests == 1:
            self.terminate()
        else:
            self._system_print("stopping now: killing what still runs\n")
            self.kill()

    def stop_leftovers(self) -> None:
        """After an unexpected error in the loop: no process may outlive this script."""
        for state in self._processes.values():
            if state.get("pid") and "returncode" not in state:
                self._procmgr.terminate(state["pid"])


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
    printer = SafePrinter(sys.stdout)
    runner = RunManager(printer)
    runner._procmgr = SignalEachProcess()
    for process in environ.expand_processes(procfile.processes, env=app_env):
        runner.add_process(process.name, process.cmd, quiet=process.quiet, env={**os.environ, **process.env}, cwd=root)
    port = os.environ.get("TASKHUB_PORT", "8000")
    threading.Thread(target=announce_when_ready, args=(runner, port), daemon=True).start()
    try:
        runner.loop()
    except BaseException:
        runner.stop_leftovers()
        raise
    codes = [state.get("returncode") for state in runner._processes.values()]
    interrupted = runner.returncode in (128 + signal.SIGINT, 128 + signal.SIGTERM)
    if interrupted and all(code in STOPPED_BY_SIGNAL for code in codes):
        text = f"taskhub stopped: {', '.join(runner._processes)} shut down cleanly.\n"
        printer.write(Message(type="line", data=text, time=datetime.datetime.now(), name="system", colour=None))
        return 0
    return runner.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
