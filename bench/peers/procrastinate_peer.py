#!/usr/bin/env python
"""Peer: Procrastinate 3.10 (plain, psycopg connector), its worker with concurrency 2.

The app is bench/peers/apps/procrastinate_app.py; its schema is applied with
``procrastinate schema --apply``, its worker is ``procrastinate worker --concurrency 2``, jobs are
deferred with one ``batch_defer_async``. A job is finished when its ``procrastinate_jobs`` row is
``succeeded``; Procrastinate keeps the job and its events (``procrastinate_events``).

    .venv/bin/python bench/peers/procrastinate_peer.py [-n 3000]   # this peer alone (run.py --only)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.peers._harness import Peer

APP = "--app=bench.peers.apps.procrastinate_app.app"

PEER = Peer(
    name="procrastinate",
    label="Procrastinate",
    python="3.11",
    app="procrastinate_app",
    setup=(f"procrastinate {APP} schema --apply",),
    workers=(f"exec procrastinate {APP} worker --concurrency 2",),
    done_sql="SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'",
    kept_tables=("procrastinate_jobs", "procrastinate_events"),
    distributions=("procrastinate", "psycopg"),
)

if __name__ == "__main__":
    from bench.peers import run

    sys.exit(run.main(["--only", PEER.name, *sys.argv[1:]]))
