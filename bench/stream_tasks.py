"""``bench.ticker``: a catalog task that reports progress at a steady pace, stamped with the wall clock
(bench/stream_latency.py).

Imported only by stream_latency.py and by its worker (``-I bench.stream_tasks``), never by the app.
"""

import time
from typing import Annotated

from jobs.parameters import Between
from jobs.tasks.registry import job_task


@job_task(name="bench.ticker", time_limit=3600)
def ticker(
    self, steps: Annotated[int, Between(1, 100_000)] = 100, interval: Annotated[float, Between(0, 60)] = 0.6
) -> dict:
    """Report progress ``steps`` times, ``interval`` seconds apart; ``t`` is the time of each report."""
    started = time.monotonic()
    for step in range(1, steps + 1):
        time.sleep(max(0.0, started + step * interval - time.monotonic()))
        self.progress(step * 100 // steps, f"{step}/{steps}", step=step, t=time.time())
    return {"steps": steps}
