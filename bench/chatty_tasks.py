"""``bench.chatty``: a catalog task that reports progress in a tight loop (bench_progress.py).

Imported only by bench_progress.py, never by the app, so it never appears in the catalog of a
running taskhub.
"""

import time
from typing import Annotated

from jobs.parameters import Between
from jobs.tasks.registry import job_task


@job_task(name="bench.chatty", time_limit=600)
def chatty(self, calls: Annotated[int, Between(1, 1_000_000)] = 10_000) -> dict:
    """Call self.progress ``calls`` times as fast as it can."""
    started = time.perf_counter()
    for index in range(calls):
        self.progress(index * 100 // calls, "working", step=index)
    return {"calls": calls, "seconds": round(time.perf_counter() - started, 6)}
