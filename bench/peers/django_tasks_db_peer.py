#!/usr/bin/env python
"""Peer: django-tasks-db 0.13, the database backend of Django's Tasks framework, 2 db_worker processes.

The package on PyPI is ``django-tasks-db`` (split out of ``django-tasks`` in 0.12); on Django 5.2
it runs on the ``django-tasks`` backport (its ``compat`` extra). The tiny Django project of
bench/peers/apps/djproject (``PEER=django_tasks_db``) sets ``TASKS`` to its ``DatabaseBackend``.
``db_worker`` runs one task at a time, so two of them make the 2 job slots. ``Task.enqueue``
enqueues (one transaction for the batch). A job is finished when its
``django_tasks_database_dbtaskresult`` row is SUCCESSFUL.

    .venv/bin/python bench/peers/django_tasks_db_peer.py [-n 3000]   # this peer alone (run.py --only)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.peers._harness import Peer

PEER = Peer(
    name="django_tasks_db",
    label="django-tasks-db",
    python="3.11",
    app="djproject.django_tasks_db_tasks",
    setup=("django-admin migrate --noinput -v0",),
    workers=("exec django-admin db_worker", "exec django-admin db_worker"),
    done_sql="SELECT count(*) FROM django_tasks_database_dbtaskresult WHERE status = 'SUCCESSFUL'",
    kept_tables=("django_tasks_database_dbtaskresult",),
    distributions=("django-tasks-db", "django-tasks", "Django"),
)

if __name__ == "__main__":
    from bench.peers import run

    sys.exit(run.main(["--only", PEER.name, *sys.argv[1:]]))
