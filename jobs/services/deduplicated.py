"""``taskhub_jobs_deduplicated_total{task,outcome}``: what duplicates did (issue 21), counted with no
row of their own and no shared counter row (which would make duplicates of every key wait for each other).

- Each job counts the duplicates deduplicated into it, by outcome, in ``Job.dedupe_counts``
  (``{"existing": 3}``), written by the duplicate's own UPDATE of the holder, whose row the create
  has locked anyway (``uniqueness``): duplicates of different keys never wait for each other. A
  job that took its key from a running one (``cancel_running``) counts ``cancelled_running`` on its
  own row, written with it.
- ``/metrics`` adds up the rows' counts (keyed jobs only: the partial index ``job_unique_key_created``),
  plus the counts of the rows deleted so far, which the deleting transaction folds into
  ``MetricTotal`` (metric ``deduplicated``) before the delete (``deduplicated_fold``: retention's
  purges and ``job_delete``, which the API and the admin use; and a deleted user account's jobs,
  which go by cascade: ``deduplicated_fold_owner``, the user's ``pre_delete``, sent in the deleting
  transaction). So the counter never goes back when jobs are deleted.

A scrape's cost grows with the keyed jobs kept (retention bounds them); a plain create pays nothing.
"""

from __future__ import annotations

from collections import defaultdict

from django.db import connection
from django.db.models import Q, QuerySet

from ..models import Job, MetricTotal, either_side_of_running

METRIC = "deduplicated"
_TOTAL = MetricTotal._meta.db_table
_FOLD = f"""
INSERT INTO "{_TOTAL}" ("metric", "task", "queue", "status", "label", "value") VALUES (%s, %s, '', '', %s, %s)
ON CONFLICT ("metric", "task", "queue", "status", "label") DO UPDATE SET "value" = "{_TOTAL}"."value" + EXCLUDED."value"
"""
_JOB = Job._meta.db_table
# PostgreSQL adds the rows' counts up itself (SQLite: in Python).
_SUM = f"""
SELECT job."celery_task_name", counts.key, SUM(counts.value::bigint)::float8
FROM "{_JOB}" AS job, jsonb_each_text(job."dedupe_counts") AS counts
WHERE job."unique_key" IS NOT NULL AND job."dedupe_counts" IS NOT NULL
GROUP BY 1, 2
"""


def dedupe_counted(counts: dict | None, outcome: str) -> dict[str, int]:
    """A job's ``dedupe_counts`` with one more duplicate of ``outcome``."""
    counts = dict(counts or {})
    counts[outcome] = counts.get(outcome, 0) + 1
    return counts


def deduplicated_fold(jobs: QuerySet[Job]) -> None:
    """Call inside the transaction that deletes ``jobs``, before the delete: their counts go into
    the totals. The rows with counts are locked first (a throttle job still takes duplicates when
    finished: none is counted twice or lost)."""
    rows = jobs.filter(unique_key__isnull=False, dedupe_counts__isnull=False).select_for_update()
    folded: dict[tuple[str, str], int] = defaultdict(int)
    for task, counts in rows.values_list("celery_task_name", "dedupe_counts"):
        for outcome, count in counts.items():
            folded[(task, outcome)] += count
    if folded:
        with connection.cursor() as cursor:
            cursor.executemany(_FOLD, [[METRIC, task, outcome, count] for (task, outcome), count in folded.items()])


def deduplicated_fold_owner(sender, instance, **kwargs) -> None:
    """The user model's ``pre_delete`` (connected by ``JobsConfig.ready``): a user account deleted
    (``delete()`` of the user or of a queryset of users) takes its jobs by cascade, which calls no
    service; Django sends this in the transaction that deletes them, before the delete."""
    deduplicated_fold(Job.objects.filter(either_side_of_running(Q(owner_id=instance.pk))))


def deduplicated_totals() -> dict[tuple[str, str], float]:
    """Duplicates by (task, outcome): the deleted rows' folded counts plus the rows' own."""
    totals: dict[tuple[str, str], float] = defaultdict(float)
    for task, outcome, count in MetricTotal.objects.filter(metric=METRIC).values_list("task", "label", "value"):
        totals[(task, outcome)] += count
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_SUM)
            rows = cursor.fetchall()
    else:
        keyed = Job.objects.filter(unique_key__isnull=False, dedupe_counts__isnull=False)
        rows = [
            (task, outcome, count)
            for task, counts in keyed.values_list("celery_task_name", "dedupe_counts")
            for outcome, count in counts.items()
        ]
    for task, outcome, count in rows:
        totals[(task, outcome)] += count
    return dict(totals)
