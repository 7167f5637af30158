#!/usr/bin/env python
"""Peer: Celery + django-celery-results (track_started, result_extended), Redis broker.

The setup a Django team runs when it wants its tasks' results in the database: a tiny Django
project (bench/peers/apps/djproject, ``PEER=celery_results``), the ``django-db`` result backend,
``task_track_started`` and ``result_extended`` on, a Redis broker (db 6). Its worker is the
Procfile's worker line with ``-A bench.peers.apps.djproject.celery_app`` and no ``-Q`` (prefork,
concurrency 2). A job is finished when its ``django_celery_results_taskresult`` row says SUCCESS.

    .venv/bin/python bench/peers/celery_results_peer.py [-n 3000]   # this peer alone (run.py --only)
"""

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench import _common as common
from bench.peers._harness import Peer


def worker_line() -> str:
    procfile = common.procfile_command("worker")
    line, found = re.subn(r"-A taskhub\b", "-A bench.peers.apps.djproject.celery_app", procfile)
    if not found:
        raise SystemExit(f"cannot derive the Celery peer's worker from the Procfile line {line!r}")
    return re.sub(r"\s-Q\s+\S+", "", line)


PEER = Peer(
    name="celery_results",
    label="Celery + django-celery-results (track_started, extended)",
    python="3.11",
    app="djproject.celery_app",
    setup=("django-admin migrate --noinput -v0",),
    workers=(worker_line(),),
    done_sql="SELECT count(*) FROM django_celery_results_taskresult WHERE status = 'SUCCESS'",
    kept_tables=("django_celery_results_taskresult",),
    distributions=("celery", "django-celery-results", "Django"),
    uses_redis=True,
    env={"WORKER_CONCURRENCY": "2"},
)

if __name__ == "__main__":
    from bench.peers import run

    sys.exit(run.main(["--only", PEER.name, *sys.argv[1:]]))
