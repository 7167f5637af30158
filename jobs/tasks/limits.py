"""How a job run past its time limit is stopped, in whichever pool runs it.

Celery enforces time limits only in its prefork pool (the pool's parent signals or kills the child);
its solo and threads pools ignore them (celery#1958, celery#9203). So the process's watchdog
(``jobs.tasks.watchdog``) keeps an alarm for each run at its limits, and at the hard limit the run
(``jobs.tasks.run.JobRun``) records the job failed, then asks its ``Stopper`` to stop the work:

- prefork (the task runs in a pool process's main thread): the pool process kills itself (SIGKILL)
  and Celery replaces it; the soft limit is Celery's own (SIGUSR1 from the pool's parent).
- solo (the worker's main thread): a signal (SIGUSR2) whose handler raises ``TimeLimitExceeded``:
  it stops Python code and interrupts a sleep or a blocking call; ``SoftTimeLimitExceeded`` the same way.
- threads (a thread of the worker): ``TimeLimitExceeded`` raised asynchronously in that thread
  (``PyThreadState_SetAsyncExc``): it stops Python code only; ``SoftTimeLimitExceeded`` the same
  way, raised when the thread runs Python code again.

A run that has not ended ``STOP_GRACE`` seconds after that (the exception was caught and ignored;
in a thread, a call blocked in C) ends its process (``os._exit``): the solo or threads worker
exits, its process manager starts it again, and the other jobs it was running are re-queued
first (``jobs.tasks.run``). C code that holds the GIL for the whole time (rare: blocking calls
release it) stops every thread of its process, the watchdog's too: in prefork Celery's own hard
limit (the job's + 60 s) kills it; in solo and threads nothing in the process can.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import threading
from enum import Enum

from billiard.process import current_process
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

logger = logging.getLogger(__name__)

# Seconds a run has to end once the exception was raised in it, before its process is ended.
STOP_GRACE = 1.0
# The signal that interrupts the main thread (solo pool). Celery's worker uses SIGUSR1 (its
# traceback dump) and SIGUSR2 only for its remote debugger (CELERY_RDBSIG, unset by default).
INTERRUPT_SIGNAL = signal.SIGUSR2
# The exit status of a worker that ended itself to stop a run (EX_SOFTWARE).
EXIT_STATUS = 70


class Where(Enum):
    PREFORK = "a prefork pool process"
    MAIN_THREAD = "the worker's main thread (solo pool)"
    THREAD = "a thread of the worker (threads pool)"


class _MainThread:
    """What the signal handler raises in the main thread, if anything (set by the watchdog)."""

    pending: type[BaseException] | None = None


def _interrupt(signum, frame) -> None:
    exception, _MainThread.pending = _MainThread.pending, None
    if exception is not None:
        raise exception()


def _async_raise(thread_id: int, exception: type[BaseException] | None) -> None:
    """Raise ``exception`` in the thread at its next Python instruction (None: clear one not raised yet)."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception) if exception else ctypes.c_void_p(0)
    )


class Stopper:
    """Stops one run from the watchdog thread: made in the run's own thread (that is the one stopped)."""

    def __init__(self) -> None:
        self.thread_id = threading.get_ident()
        if current_process().name.startswith("ForkPoolWorker"):
            self.where = Where.PREFORK
        elif threading.current_thread() is threading.main_thread():
            self.where = Where.MAIN_THREAD
            if signal.getsignal(INTERRUPT_SIGNAL) is not _interrupt:
                signal.signal(INTERRUPT_SIGNAL, _interrupt)
        else:
            self.where = Where.THREAD
        self._lock = threading.Lock()
        self._disarmed = False
        self._raised = False

    @property
    def pool_delivers_soft_limit(self) -> bool:
        return self.where is Where.PREFORK

    def soft(self) -> None:
        """Raise ``SoftTimeLimitExceeded`` in the run (where the pool does not)."""
        if not self.pool_delivers_soft_limit:
            self._raise(SoftTimeLimitExceeded)

    def hard(self) -> None:
        """Stop the run: kill a prefork pool process, raise ``TimeLimitExceeded`` elsewhere."""
        if self.where is Where.PREFORK:
            os.kill(os.getpid(), signal.SIGKILL)
        self._raise(TimeLimitExceeded)

    def disarm(self) -> None:
        """Called by the run's own thread as it ends: nothing is raised in it any more (an exception
        set but not yet raised is taken back)."""
        with self._lock:
            self._disarmed = True
            if self._raised:
                if self.where is Where.MAIN_THREAD:
                    _MainThread.pending = None
                else:
                    _async_raise(self.thread_id, None)

    def end_process(self, reason: str) -> None:
        """The run did not end: end its process (the solo or threads worker; its manager restarts it)."""
        logger.critical("%s; ending the worker process %s (%s).", reason, os.getpid(), self.where.value)
        logging.shutdown()
        os._exit(EXIT_STATUS)

    def _raise(self, exception: type[BaseException]) -> None:
        with self._lock:
            if self._disarmed:
                return
            self._raised = True
            if self.where is Where.THREAD:
                _async_raise(self.thread_id, exception)
            else:
                _MainThread.pending = exception
                signal.pthread_kill(self.thread_id, INTERRUPT_SIGNAL)
