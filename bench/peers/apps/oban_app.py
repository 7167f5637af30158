"""oban-py: a function job and the enqueuer (``Oban.enqueue_many``: one INSERT for the batch).

The worker is oban's own CLI (``oban start --queues default:2``), which imports this module to run
``noop`` by its path.
"""

import asyncio
import os

from oban import Oban, job

_loop = asyncio.new_event_loop()
_oban: Oban | None = None
_pool = None


@job(queue="default")
def noop(index: int = 0) -> int:
    return index


def prepare() -> None:
    global _oban, _pool  # noqa: PLW0603 - one instance per enqueuer process
    _pool = _loop.run_until_complete(Oban.create_pool(os.environ["PEER_DATABASE_URL"]))
    _oban = Oban(pool=_pool, queues={})  # enqueues only: it runs no queue


def enqueue(count: int) -> None:
    _loop.run_until_complete(_oban.enqueue_many([noop.new(index) for index in range(count)]))


def close() -> None:
    _loop.run_until_complete(_pool.close())
