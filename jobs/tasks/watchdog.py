"""One watchdog thread per worker process, shared by the job runs of that process.

Every ``JOB_HEARTBEAT_INTERVAL`` seconds it calls ``_beat()`` of each run it watches (heartbeat,
throttled progress, cancel grace period: see ``jobs.tasks.run.JobRun``), and
sooner when a run asks (``beat_by``: a throttled progress value is due). A
thread per run would cost a thread start and join for every job, most of which end before their
first heartbeat. A run may also set an alarm (``alarm``): its ``_alarm()`` is called at that moment,
not at the next heartbeat (a time limit fires on time: ``jobs.tasks.limits``), and returns when
to call it again, if ever.

It knows nothing of jobs: a run is anything with a ``_beat()`` method and the attributes
``next_beat`` (a ``time.monotonic()`` value), ``beating`` (a lock held around each of its beats)
and ``watched``. ``unwatch`` returns once no beat of that run is in progress and none can start,
as joining a thread of its own did.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Protocol

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)


class Watched(Protocol):
    next_beat: float
    beating: threading.Lock
    watched: bool

    def _beat(self) -> None: ...


class Alarmed(Watched, Protocol):
    def _alarm(self) -> float | None: ...


class Watchdog:
    def __init__(self) -> None:
        self._runs: set[Watched] = set()
        self._alarms: dict[Alarmed, float] = {}  # a watched run's next alarm (a time.monotonic() value)
        self._wake = threading.Condition(threading.Lock())
        self._wake_at = float("inf")  # when the thread wakes up next, if it sleeps
        self._used_database = False  # the thread holds a connection of its own: close it when idle
        self._thread = threading.Thread(target=self._loop, name="job-watchdog", daemon=True)
        self._thread.start()

    def watch(self, run: Watched, *, first_after: float | None = None) -> None:
        """Beat ``run`` every heartbeat interval, the first one ``first_after`` seconds (default: one
        interval) after now."""
        run.next_beat = time.monotonic() + (settings.JOB_HEARTBEAT_INTERVAL if first_after is None else first_after)
        run.watched = True
        with self._wake:
            self._runs.add(run)
            if run.next_beat < self._wake_at:  # a first beat sooner, or an interval shortened (tests)
                self._wake.notify()

    def beat_by(self, run: Watched, when: float) -> None:
        """Beat ``run`` at ``when`` (a ``time.monotonic()`` value) if its next beat is later (a
        throttled progress value to write)."""
        with self._wake:
            if run.watched and when < run.next_beat:
                run.next_beat = when
                if when < self._wake_at:
                    self._wake.notify()

    def alarm(self, run: Alarmed, when: float | None) -> None:
        """Call ``run._alarm()`` at ``when`` (a ``time.monotonic()`` value) while ``run`` is watched,
        instead of an alarm set before; None: no alarm."""
        with self._wake:
            if when is None or run not in self._runs:
                self._alarms.pop(run, None)
                return
            self._alarms[run] = when
            if when < self._wake_at:
                self._wake.notify()

    def unwatch(self, run: Watched) -> None:
        """Stop beating ``run``; returns once a beat of it in progress has finished."""
        with self._wake:
            self._runs.discard(run)
            self._alarms.pop(run, None)
            if not self._runs and self._used_database:
                self._wake.notify()  # idle now: let the thread give its connection back
        # Like the join of a thread of its own, with the same limit: a beat stuck on the database
        # does not hold the task forever (it is not repeated, but may still finish).
        acquired = run.beating.acquire(timeout=settings.JOB_HEARTBEAT_INTERVAL + 5)
        run.watched = False
        if acquired:
            run.beating.release()

    def _loop(self) -> None:
        while True:
            try:
                self._step()
            except Exception:  # the thread must outlive any error: every run of the process depends on it
                logger.exception("Watchdog: unexpected error")
                time.sleep(1)

    def _step(self) -> None:
        """Beat the runs that are due, else sleep until the next one is (or give the connection back)."""
        with self._wake:
            now = time.monotonic()
            due = [run for run in self._runs if run.next_beat <= now]
            alarmed = [run for run, when in self._alarms.items() if when <= now]
            for run in alarmed:
                del self._alarms[run]  # once: ``_alarm()`` says when next
            idle_with_connection = not self._runs and self._used_database
            if not due and not alarmed and not idle_with_connection:
                interval = settings.JOB_HEARTBEAT_INTERVAL
                self._wake_at = min(
                    min((run.next_beat for run in self._runs), default=now + interval),
                    min(self._alarms.values(), default=now + interval),
                )
                self._wake.wait(max(0.0, self._wake_at - now))
                self._wake_at = float("inf")
                return
            self._used_database = bool(due or alarmed)
        if not due and not alarmed:
            connection.close()  # idle: this thread's connection goes back to the pool (or is closed)
            return
        for run in alarmed:  # first: an alarm is on time, a heartbeat can wait a moment
            with run.beating:
                if not run.watched:
                    continue
                try:
                    close_old_connections()
                    self.alarm(run, run._alarm())
                except Exception:
                    logger.exception("Watchdog: an alarm failed")
        for run in due:
            with run.beating:
                if not run.watched:
                    continue
                run.next_beat = time.monotonic() + settings.JOB_HEARTBEAT_INTERVAL
                try:
                    close_old_connections()  # as before a request: past CONN_MAX_AGE or broken
                    run._beat()
                except Exception:
                    logger.exception("Watchdog: a heartbeat failed")


class _Current:
    """This process's watchdog, if started."""

    lock = threading.Lock()
    watchdog: Watchdog | None = None


def watchdog() -> Watchdog:
    """This process's watchdog, started on first use (in the pool process that runs jobs)."""
    if _Current.watchdog is None:
        with _Current.lock:
            if _Current.watchdog is None:
                _Current.watchdog = Watchdog()
    return _Current.watchdog


def _forget_after_fork() -> None:
    """A forked child has no watchdog thread (only the forking thread survives a fork)."""
    _Current.lock, _Current.watchdog = threading.Lock(), None


os.register_at_fork(after_in_child=_forget_after_fork)
