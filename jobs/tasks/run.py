"""One run of a catalog task as its worker sees it (``JobRun``): throttled progress, the
heartbeat the watchdog (``jobs.tasks.watchdog``) beats for it, a cancel noticed at the next
``progress`` call or by terminating the pool process after the grace period, and the soft and hard
time limits (``jobs.tasks.limits``). ``JobTask`` (``jobs.tasks.base``) makes one per run.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any

from billiard.process import current_process
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections

from taskhub.errors import Conflict, NotFound

from ..services.execution import (
    RunState,
    job_clean_progress_meta,
    job_fail,
    job_heartbeat,
    job_requeue_interrupted,
    job_revoke,
    job_update_progress,
)
from .limits import STOP_GRACE, Stopper
from .watchdog import watchdog

logger = logging.getLogger(__name__)


class JobCancelled(Exception):
    """Raised inside a task at a progress call once its job was cancelled."""


class JobLost(Exception):
    """Raised inside a task whose job is no longer its to run (finished elsewhere, re-queued, deleted)."""


# What a database that is restarting or out of reach raises (not a refused write: no IntegrityError).
DATABASE_DOWN = (OperationalError, InterfaceError)


def waiting_out_outages(write, *, job_id, what: str):
    """``write()``, tried again while the database is out of reach, for at most JOB_STALE_AFTER.

    A worker that gave up at the first refused connection left its job running with no heartbeat:
    the sweeper re-queued it a minute later and it ran again from the start. Waiting out a
    restart keeps it one run. A longer outage raises, and the sweeper decides as for a lost worker.
    """
    deadline, delay = time.monotonic() + settings.JOB_STALE_AFTER, 0.5
    while True:
        try:
            return write()
        except DATABASE_DOWN as exc:
            if time.monotonic() + delay > deadline:
                raise
            logger.warning("Job %s: the database is out of reach (%s); %s again in %.1fs.", job_id, exc, what, delay)
            close_old_connections()  # a broken connection is replaced on the next try
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _terminate_self() -> None:
    """Kill this pool process. Celery's prefork parent replaces it; with acks_late the message is
    re-queued and then skipped, because the row is no longer pending.

    Only a prefork pool child is killed: under the solo or threads pool this process is the
    whole worker, so the task is left to run out (its row is already final, and its later
    writes are refused).
    """
    if not current_process().name.startswith("ForkPoolWorker"):
        logger.error("Cannot terminate the task: not in a prefork pool process (%s).", current_process().name)
        return
    os.kill(os.getpid(), signal.SIGKILL)


class JobRun:
    """One attempt of one job inside a worker process: progress throttling, and what the process's
    watchdog (``jobs.tasks.watchdog``) does for it at each heartbeat and at its time limits."""

    # The runs of this process between start and stop (several in the threads pool): re-queued
    # before the process ends itself for another run's time limit.
    _running: set[JobRun] = set()
    _running_lock = threading.Lock()

    def __init__(self, *, job, entry, worker: str):
        self.job_id = job.id
        self.attempts = job.attempts
        self.entry = entry
        self.worker = worker
        self.started = time.monotonic()
        self.cancel_requested_at = None
        self.gone = False
        self.parent_results: dict | None = None  # a workflow step's, read at the first access
        self._lock = threading.Lock()
        self._pending: tuple[int, dict] | None = None
        # The start has just written the row: progress within JOB_PROGRESS_MIN_INTERVAL of it waits
        # (a job that ends sooner never writes it: its outcome supersedes it).
        self._last_write = self.started
        self._stop = threading.Event()
        # Kept by the watchdog: when the next heartbeat is due, held around each beat, watched or not.
        self.next_beat = float("inf")
        self.beating = threading.Lock()
        self.watched = False
        # Time limits (jobs.tasks.limits): made in the task's own thread, the one it stops.
        self.stopper = Stopper()
        soft = entry.soft_time_limit
        self._soft_at = (
            self.started + soft
            if soft and soft < entry.time_limit and not self.stopper.pool_delivers_soft_limit
            else None
        )
        self._hard_at = self.started + entry.time_limit
        self._end_process_at: float | None = None

    # -- called from the task --------------------------------------------------------------------
    def progress(self, percent: float, message: str | None = None, **meta: Any) -> None:
        self.raise_if_stopped()
        percent = int(max(0, min(100, percent)))
        meta = job_clean_progress_meta(meta=meta, message=message)
        now = time.monotonic()
        with self._lock:
            self._pending = (percent, meta)
            due = self._last_write + settings.JOB_PROGRESS_MIN_INTERVAL
            if now >= due:
                self._pending, self._last_write = None, now
        if now < due:
            # Throttled: the watchdog writes the latest value when the interval is over.
            watchdog().beat_by(self, due)
            return
        try:
            state = job_update_progress(job_id=self.job_id, attempts=self.attempts, progress=percent, meta=meta)
        except DATABASE_DOWN as exc:
            # The task goes on; the watchdog writes the latest progress with a later heartbeat.
            logger.warning("Job %s: progress not written, the database is out of reach: %s", self.job_id, exc)
            close_old_connections()
            with self._lock:
                self._pending = self._pending or (percent, meta)
            return
        self._note(state)
        self.raise_if_stopped()

    def take_held(self) -> tuple[int, dict] | None:
        """The report the throttle still holds (the run has stopped: the watchdog will not write it)."""
        with self._lock:
            held, self._pending = self._pending, None
        return held

    def write_held(self) -> None:
        """Write the report the throttle still holds, if any (before a failure is recorded: where
        the run had got to)."""
        held = self.take_held()
        if held is None:
            return
        try:
            job_update_progress(job_id=self.job_id, attempts=self.attempts, progress=held[0], meta=held[1])
        except Exception as exc:  # noqa: BLE001 - the outcome matters, this report does not
            logger.warning("Job %s: last progress report not written: %s", self.job_id, exc)
            close_old_connections()

    def raise_if_stopped(self) -> None:
        if self.gone:
            raise JobLost(f"Job {self.job_id} is no longer running as attempt {self.attempts + 1}.")
        if self.cancel_requested_at is not None:
            raise JobCancelled(f"Job {self.job_id} was cancelled.")

    def _note(self, state: RunState) -> None:
        if state is RunState.GONE:
            self.gone = True
        elif state is RunState.CANCEL_REQUESTED:
            self.cancel_requested_at = self.cancel_requested_at or time.time()

    # -- beaten by the watchdog thread -----------------------------------------------------------
    def start(self) -> None:
        with JobRun._running_lock:
            JobRun._running.add(self)
        watchdog().watch(self)
        watchdog().alarm(self, self._soft_at or self._hard_at)

    def stop(self) -> None:
        """Once this returns the watchdog neither beats this run nor acts on it (a beat in progress
        is waited for; one that learns of a cancel after this was called terminates nothing), and
        no time limit is raised in the task's thread any more."""
        self.stopper.disarm()
        self._stop.set()
        with JobRun._running_lock:
            JobRun._running.discard(self)
        watchdog().unwatch(self)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _alarm(self) -> float | None:
        """At the soft limit, the hard limit, and ``STOP_GRACE`` after it; returns the next one."""
        if self._stop.is_set():
            return None
        now = time.monotonic()
        if self._end_process_at is not None:
            reason = f"Job {self.job_id} did not stop {STOP_GRACE:g}s after its hard time limit"
            self._requeue_others(reason)
            self.stopper.end_process(reason)
        if now >= self._hard_at:
            self._past_hard_limit(now - self.started)
            self._end_process_at = time.monotonic() + STOP_GRACE
            return self._end_process_at
        if self._soft_at is not None and now >= self._soft_at:
            logger.warning("Job %s: soft time limit (%ss) exceeded.", self.job_id, self.entry.soft_time_limit)
            self._soft_at = None
            self.stopper.soft()
        return self._hard_at

    def _requeue_others(self, reason: str) -> None:
        """The other jobs this process runs go back to their queue as their next attempt, before the
        process ends (else each would wait for the sweeper, JOB_STALE_AFTER, as for a crash)."""
        with JobRun._running_lock:
            others = [run for run in JobRun._running if run is not self and not run.stopped]
        for run in others:
            try:
                job_requeue_interrupted(
                    job_id=run.job_id,
                    attempts=run.attempts,
                    reason=f"Its worker process ended: {reason}",
                    worker=run.worker,
                )
            except Exception:
                logger.exception("Could not re-queue job %s; the sweeper will.", run.job_id)

    def _past_hard_limit(self, elapsed: float) -> None:
        """Record the job failed (fenced on this attempt), then stop the work (``Stopper.hard``)."""
        error = f"Hard time limit ({self.entry.time_limit} s) exceeded: stopped after {elapsed:.1f} s."
        logger.warning("Job %s: %s", self.job_id, error)
        try:
            job_fail(
                job_id=self.job_id,
                attempts=self.attempts,
                error=error,
                error_type="TimeLimitExceeded",
                auto_retry=False,
                worker=self.worker,
            )
        except (Conflict, NotFound) as exc:  # finished, re-queued or deleted meanwhile: stopped all the same
            logger.warning("Job %s: time limit not recorded: %s", self.job_id, exc.message)
        except Exception:
            logger.exception("Could not record the time limit of job %s", self.job_id)
            close_old_connections()
        self.stopper.hard()

    def _beat(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, None
            if pending:
                self._last_write = time.monotonic()
        try:
            state, waited = job_heartbeat(
                job_id=self.job_id,
                attempts=self.attempts,
                progress=pending[0] if pending else None,
                meta=pending[1] if pending else None,
            )
        except Exception:
            logger.exception("Heartbeat for job %s failed", self.job_id)
            close_old_connections()
            return
        if self._stop.is_set():
            return
        if state is RunState.CANCEL_REQUESTED:
            self._note(state)
            waited = waited or 0.0  # seconds since the cancel request, by the database's clock
            if not self.entry.cancellable:
                # It never calls progress, so it cannot stop by itself: no point in waiting.
                self._terminate(
                    f"Terminated {waited:.1f}s after the cancel request (the task does not stop cooperatively)."
                )
            elif waited >= settings.JOB_CANCEL_GRACE_SECONDS:
                self._terminate(
                    f"Terminated {waited:.1f}s after the cancel request (grace period "
                    f"{settings.JOB_CANCEL_GRACE_SECONDS:g}s)."
                )
        elif state is RunState.GONE:
            self.gone = True

    def _terminate(self, reason: str) -> None:
        """Revoke the cancelled job and terminate its pool process."""
        logger.warning("Job %s: %s", self.job_id, reason)
        try:
            job_revoke(job_id=self.job_id, attempts=self.attempts, reason=reason, worker=self.worker)
        except Exception:
            logger.exception("Could not record termination of job %s", self.job_id)
        _terminate_self()
