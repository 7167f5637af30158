#!/usr/bin/env python
"""Peer: oban-py 0.7 (PyPI ``oban``; asyncio on PostgreSQL, needs Python 3.12), one queue of limit 2.

Its schema comes from ``oban install``, its worker is ``oban start --queues default:2`` (the CLI,
asyncio); jobs are inserted with one ``Oban.enqueue_many`` (bench/peers/apps/oban_app.py). A job
is finished when its ``oban_jobs`` row is ``completed``.

    .venv/bin/python bench/peers/oban_peer.py [-n 3000]   # this peer alone (run.py --only)
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.peers._harness import Peer

PEER = Peer(
    name="oban",
    label="oban-py (asyncio, PostgreSQL)",
    python="3.12",
    app="oban_app",
    setup=('oban install --dsn "$PEER_DATABASE_URL"',),
    workers=('exec oban start --dsn "$PEER_DATABASE_URL" --queues default:2 --log-level WARNING',),
    done_sql="SELECT count(*) FROM oban_jobs WHERE state = 'completed'",
    kept_tables=("oban_jobs",),
    distributions=("oban", "psycopg"),
)

if __name__ == "__main__":
    from bench.peers import run

    sys.exit(run.main(["--only", PEER.name, *sys.argv[1:]]))
