"""Worker processes seen alive, for metrics and the dashboard (``jobs.models.WorkerHeartbeat``).

Each process that runs jobs (a prefork pool process, or the worker itself with the solo or threads
pool) has its watchdog thread (``jobs.tasks.watchdog``) stamp a heartbeat row every
``JOB_HEARTBEAT_INTERVAL``: one UPDATE per interval per process, whether it runs jobs or not.
The row is named as jobs name the process that runs them (``Job.worker``: node name and pid), so
running jobs can be counted per worker. A clean stop removes the rows; a killed process's row goes
stale after ``JOB_STALE_AFTER``.
"""

from __future__ import annotations

import logging
import os
import threading

from celery import current_app
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown
from django.db import close_old_connections

from ..services.workers import worker_beat, worker_forget
from .watchdog import watchdog

logger = logging.getLogger(__name__)


class ProcessBeat:
    """What the watchdog beats for the process itself (see ``watchdog.Watched``)."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self.pid = os.getpid()
        self.queues = sorted(current_app.amqp.queues.consume_from or ())
        self.next_beat = float("inf")
        self.beating = threading.Lock()
        self.watched = False

    def _beat(self) -> None:
        try:
            worker_beat(hostname=self.hostname, pid=self.pid, queues=self.queues)
        except Exception:
            logger.exception("Worker heartbeat of %s:%s failed", self.hostname, self.pid)
            close_old_connections()

    def start(self) -> None:
        watchdog().watch(self, first_after=0.0)

    def stop(self) -> None:
        watchdog().unwatch(self)
        try:
            worker_forget(hostname=self.hostname, pid=self.pid)
        except Exception:
            logger.exception("Could not remove the heartbeat of %s:%s", self.hostname, self.pid)


class _Current:
    beat: ProcessBeat | None = None


def _start(hostname: str) -> None:
    if _Current.beat is None or _Current.beat.pid != os.getpid():
        _Current.beat = ProcessBeat(hostname)
        _Current.beat.start()


@worker_process_init.connect
def beat_in_pool_process(sender=None, **extra) -> None:
    """A prefork pool process starts (``sender``: the worker's node name)."""
    _start(str(sender))


@worker_ready.connect
def beat_in_worker(sender=None, **extra) -> None:
    """The worker is ready; without a prefork pool it runs the jobs itself."""
    if not isinstance(getattr(sender, "pool", None), PreforkPool):
        _start(sender.hostname)


@worker_process_shutdown.connect
def forget_pool_process(sender=None, pid=None, **extra) -> None:
    if _Current.beat is not None and _Current.beat.pid == os.getpid():
        _Current.beat.stop()
        _Current.beat = None


@worker_shutdown.connect
def forget_worker(sender=None, **extra) -> None:
    """The worker stops: none of its processes runs jobs any more (pool processes may be gone
    without a word, e.g. terminated with the worker's process group)."""
    hostname = getattr(sender, "hostname", None)
    if _Current.beat is not None and _Current.beat.pid == os.getpid():
        watchdog().unwatch(_Current.beat)
        _Current.beat = None
    if hostname:
        try:
            worker_forget(hostname=hostname, pid=None)
        except Exception:
            logger.exception("Could not remove the heartbeats of %s", hostname)
