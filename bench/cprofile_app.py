"""taskhub's Celery app with every process of the worker under cProfile (bench/profile_worker.py
--cprofile, where py-spy is not installed): each pool process profiles itself from its start and
writes ``pool-<pid>.prof`` into ``CPROFILE_DIR`` after every ``CPROFILE_EVERY`` tasks and at its
exit; the main process (the consumer) from this import to its shutdown, ``main.prof``. CPU time
(``time.process_time``), not wall time: what a process costs the machine, not what it waits for."""

from __future__ import annotations

import cProfile
import os
import time

from celery import signals

from taskhub.celery import app

__all__ = ["app"]

_EVERY = int(os.environ.get("CPROFILE_EVERY", "200"))


class _State:
    profile = cProfile.Profile(time.process_time)
    name = "main"
    tasks = 0


def _dump() -> None:
    _State.profile.create_stats()
    _State.profile.dump_stats(os.path.join(os.environ["CPROFILE_DIR"], f"{_State.name}.prof"))
    _State.profile.enable()


_State.profile.enable()  # the main process: the consumer


@signals.worker_process_init.connect
def _start(**kwargs) -> None:
    _State.profile, _State.name = cProfile.Profile(time.process_time), f"pool-{os.getpid()}"
    _State.profile.enable()


@signals.worker_shutdown.connect
def _stop_main(**kwargs) -> None:
    _dump()


@signals.task_postrun.connect
def _count(**kwargs) -> None:
    _State.tasks += 1
    if _State.tasks % _EVERY == 0:
        _dump()


@signals.worker_process_shutdown.connect
def _stop(**kwargs) -> None:
    _dump()
