"""celery beat's scheduler: a schedule of a catalog task fires a tracked job.

Run as ``celery -A taskhub beat -S jobs.schedules.scheduler:JobScheduler`` (the Procfile,
``CELERY_BEAT_SCHEDULER``). It is django-celery-beat's ``DatabaseScheduler`` (schedules in
the database, edits picked up within ``max_interval``, 5 s) with one change: a due entry whose
task is in the catalog is not published as a bare Celery message, which a worker would skip
since no job row has its id. It goes through ``job_schedule_fire``, which creates the job (and
sends it after commit, like every job), once per slot, with any slot the schedule missed since
its last fired one (a beat a period late, :mod:`.firing`). Other entries (the maintenance
tasks of ``CELERY_BEAT_SCHEDULE``, Celery's cleanup) keep Celery's own path.

Beat writes its own entries into the table by name at start (``update_or_create``): a user's
schedule holding such a name would be turned into the maintenance task, keeping the user's
ownership and ``enabled`` flag. Users' rows are stored as ``user:<id>:<name>`` (:mod:`.fields`),
so this only meets a row written otherwise; it is moved to that name before beat writes its own.
A schedule whose firings fail (a quota, arguments that no longer fit) is logged once per
``error_log_interval``, with the count of failures since, not at every firing.
"""

import logging
import time

from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from taskhub.errors import ApplicationError

from ..catalog import catalog
from .fields import internal_name
from .firing import job_schedule_fire

logger = logging.getLogger(__name__)


class JobModelEntry(ModelEntry):
    def save(self) -> None:
        """Write only beat's own bookkeeping. django-celery-beat re-reads the row and saves all
        of it, which could undo an edit or a disable made between its read and its write."""
        PeriodicTask.objects.filter(pk=self.model.pk).update(
            last_run_at=self.model.last_run_at, total_run_count=self.model.total_run_count
        )


class JobScheduler(DatabaseScheduler):
    Entry = JobModelEntry
    error_log_interval = 300.0  # seconds between two error lines of one failing schedule

    def __init__(self, *args, **kwargs):
        self._failures: dict[int, tuple[float, int]] = {}  # schedule id -> (last error line, failures since)
        super().__init__(*args, **kwargs)

    def update_from_dict(self, mapping):
        """Beat's own entries, written by name: a user's row holding one of the names first moves
        to its own name (``user:<id>:<name>``), so that it is never rewritten into beat's entry."""
        for name in mapping:
            with transaction.atomic():
                owned = (
                    PeriodicTask.objects.select_for_update(of=("self",))
                    .filter(name=name, job_schedule__isnull=False)
                    .values_list("pk", "job_schedule__owner_id")
                    .first()
                )
                if owned is None:
                    continue
                moved = internal_name(owner_id=owned[1], name=name)
                if PeriodicTask.objects.filter(name=moved).exists():
                    logger.error(
                        "Beat entry %r: its name is held by schedule %s of user %s; not installed.", name, *owned
                    )
                    mapping = {key: value for key, value in mapping.items() if key != name}
                    continue
                PeriodicTask.objects.filter(pk=owned[0]).update(name=moved)
                logger.warning("Beat entry %r: schedule %s of user %s held its name, now %r.", name, *owned, moved)
        super().update_from_dict(mapping)

    def _log_failure(self, entry, message: str) -> None:
        """One error line per schedule per ``error_log_interval``, saying how many failed since."""
        now = time.monotonic()
        logged_at, since = self._failures.get(entry.model.pk, (None, 0))
        if logged_at is not None and now - logged_at < self.error_log_interval:
            self._failures[entry.model.pk] = (logged_at, since + 1)
            return
        more = f" ({since} more failures since the last line)" if since else ""
        logger.error("Schedule %r (%s) created no job: %s%s", entry.name, entry.task, message, more)
        self._failures[entry.model.pk] = (now, 0)

    def apply_async(self, entry, producer=None, advance=True, **kwargs):
        if entry.task not in catalog:
            return super().apply_async(entry, producer=producer, advance=advance, **kwargs)
        last_run_at = entry.last_run_at  # before reserve(): the firing was due one period after it
        if advance:
            entry = self.reserve(entry)
        try:
            firing = job_schedule_fire(
                periodic_task_id=entry.model.pk, last_run_at=last_run_at, fired_at=timezone.now()
            )
        except ApplicationError as exc:
            self._log_failure(entry, exc.message)
            return None
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
        for job in firing.caught_up:
            logger.warning("Schedule %r: job %s for missed slot %s.", entry.name, job.id, job.scheduled_for)
        if firing.job is None:
            logger.info("Schedule %r: no job for slot %s (%s).", entry.name, firing.slot, firing.skipped)
        else:
            logger.info("Schedule %r: job %s for slot %s.", entry.name, firing.job.id, firing.slot)
        return firing.job
