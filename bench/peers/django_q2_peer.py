#!/usr/bin/env python
"""Peer: django-q2 1.11 with its ORM broker, a cluster of 2 workers.

The tiny Django project of bench/peers/apps/djproject (``PEER=django_q2``): ``Q_CLUSTER`` with
``orm: default`` and ``workers: 2`` (``save_limit: 0`` keeps every result: with the default, 250,
the run could not be counted). ``manage.py qcluster`` runs it; ``async_task`` enqueues (one
transaction for the batch). A job is finished when its ``django_q_task`` row is a success.

    .venv/bin/python bench/peers/django_q2_peer.py [-n 3000]   # this peer alone (run.py --only)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.peers._harness import Peer

PEER = Peer(
    name="django_q2",
    label="django-q2 (ORM broker)",
    python="3.11",
    app="djproject.django_q2_tasks",
    setup=("django-admin migrate --noinput -v0",),
    workers=("exec django-admin qcluster",),
    done_sql="SELECT count(*) FROM django_q_task WHERE success",
    kept_tables=("django_q_task", "django_q_ormq"),
    distributions=("django-q2", "Django"),
)

if __name__ == "__main__":
    from bench.peers import run

    sys.exit(run.main(["--only", PEER.name, *sys.argv[1:]]))
