"""General-purpose tasks: a long-running timer and dataset aggregation."""

import csv
import io
import math
import time
from typing import Annotated

from ..models import JobPriority
from ..parameters import Between, MaxItems
from .registry import job_task


@job_task(
    name="jobs.tasks.common_tasks.long_running_task",
    aliases=("app.tasks.common_tasks.long_running_task", "long_running_task"),
    time_limit=4 * 3600,
)
def long_running_task(self, seconds: Annotated[int, Between(0, 4 * 3600)] = 10, **labels: str) -> dict:
    """Work for `seconds` seconds, reporting progress every second. Extra keyword arguments
    are string labels echoed back in the result."""
    started = time.monotonic()
    self.progress(0, f"0/{seconds}s")
    for second in range(1, seconds + 1):
        time.sleep(max(0.0, started + second - time.monotonic()))
        self.progress(second * 100 // seconds, f"{second}/{seconds}s", elapsed=second)
    return {"seconds": seconds, "labels": labels, "elapsed": round(time.monotonic() - started, 3)}


def _records_from(data: list | str, *, text: bool) -> list[dict]:
    if text:
        return list(csv.DictReader(io.StringIO(data)))
    if not all(isinstance(row, dict) for row in data):
        raise ValueError("every record must be a JSON object")
    return data


def _number(value) -> float | None:
    if isinstance(value, bool) or value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@job_task(
    name="jobs.tasks.common_tasks.process_data",
    aliases=("app.tasks.common_tasks.process_data", "data_processing", "process_data"),
    time_limit=3600,
)
def process_data(
    self,
    records: Annotated[list, MaxItems(100_000)] | None = None,
    csv_text: str | None = None,
    group_by: str | None = None,
    fields: list[str] | None = None,
) -> dict:
    """Aggregate a dataset (a list of JSON records, or CSV text with a header row): count, sum,
    mean, min and max of every numeric field, optionally per value of `group_by`."""
    if (records is None) == (csv_text is None):
        raise ValueError("give exactly one of records or csv_text")
    rows = _records_from(csv_text if records is None else records, text=records is None)
    total = len(rows)
    groups: dict[str, dict[str, dict]] = {}
    self.progress(0, f"0/{total} records")
    step = max(1, total // 100)
    for index, row in enumerate(rows, start=1):
        key = str(row.get(group_by, "")) if group_by else "all"
        stats = groups.setdefault(key, {})
        stats.setdefault("__count__", {"count": 0})["count"] += 1
        for name, raw in row.items():
            if (fields and name not in fields) or name == group_by:
                continue
            value = _number(raw)
            if value is None:
                continue
            field = stats.setdefault(name, {"count": 0, "sum": 0.0, "min": value, "max": value})
            field["count"] += 1
            field["sum"] += value
            field["min"] = min(field["min"], value)
            field["max"] = max(field["max"], value)
        if index % step == 0 or index == total:
            self.progress(index * 100 // total, f"{index}/{total} records")
    result = {}
    for key, stats in groups.items():
        count = stats.pop("__count__")["count"]
        result[key] = {
            "records": count,
            "fields": {name: {**field, "mean": field["sum"] / field["count"]} for name, field in sorted(stats.items())},
        }
    return {"records": total, "group_by": group_by, "groups": result}


@job_task(
    name="jobs.tasks.common_tasks.flaky_task",
    aliases=("flaky_task",),
    priority=JobPriority.LOW,
    max_retries=3,
    retry_backoff=1.0,
    retry_backoff_max=30.0,
    time_limit=600,
)
def flaky_task(self, fail_times: Annotated[int, Between(0, 10)] = 1, message: str = "transient failure") -> dict:
    """Fail the first `fail_times` attempts, then succeed: shows automatic retries with backoff."""
    attempt = self.attempt
    self.progress(50, f"attempt {attempt}")
    if attempt <= fail_times:
        raise RuntimeError(f"{message} (attempt {attempt})")
    return {"attempt": attempt}


@job_task(
    name="jobs.tasks.common_tasks.blocking_sleep",
    aliases=("blocking_sleep",),
    cancellable=False,
    time_limit=4 * 3600,
)
def blocking_sleep(self, seconds: Annotated[float, Between(0, 4 * 3600)] = 60.0) -> dict:
    """Sleep without reporting progress: it cannot stop cooperatively, so a cancel terminates it
    at the next heartbeat."""
    time.sleep(seconds)
    return {"slept": seconds}


@job_task(name="jobs.tasks.common_tasks.gather", aliases=("gather",), time_limit=600)
def gather(self, **labels: str) -> dict:
    """A workflow's fan-in: reads the results of the steps it waits for (``self.parent_results``, by
    step id) and reports how many there are and, up to 1,000, their step ids."""
    results = self.parent_results
    steps = sorted(results) if len(results) <= 1000 else None
    return {"count": len(results), "steps": steps, "labels": labels}
