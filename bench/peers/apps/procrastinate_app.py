"""Procrastinate, plain (no Django): an App on the psycopg connector, as its quickstart sets it up."""

import asyncio
import os

import procrastinate

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=os.environ["PEER_DATABASE_URL"]))
_loop = asyncio.new_event_loop()


@app.task(name="noop")
async def noop(index: int = 0) -> int:
    return index


def prepare() -> None:
    _loop.run_until_complete(app.open_async())


def enqueue(count: int) -> None:
    """One ``batch_defer_async``: a single INSERT of ``count`` jobs."""
    _loop.run_until_complete(noop.batch_defer_async(*({"index": index} for index in range(count))))
