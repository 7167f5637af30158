"""celery beat's scheduler: a schedule of a catalog task fires a tracked job.

Run as ``celery -A taskhub beat -S jobs.schedules.scheduler:JobScheduler`` (the Procfile,
``CELERY_BEAT_SCHEDULER``). It is django-celery-beat's ``DatabaseScheduler`` (schedules in
the database, edits picked up within ``max_interval``, 5 s) with one change: a due entry whose
task is in the catalog is not published as a bare Celery message, which a worker would skip
since no job row has its id. It goes through ``job_schedule_fire``, which creates the job (and
sends it after commit, like every job), once per slot. Other entries (the maintenance
tasks of ``CELERY_BEAT_SCHEDULE``, Celery's cleanup) keep Celery's own path.
"""

import logging

from django.utils import timezone
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler, ModelEntry

from taskhub.errors import ApplicationError

from ..catalog import catalog
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
            logger.error("Schedule %r (%s) created no job: %s", entry.name, entry.task, exc.message)
            return None
        finally:
            self._tasks_since_sync += 1
            if self.should_sync():
                self._do_sync()
        if firing.job is None:
            logger.info("Schedule %r: no job for slot %s (%s).", entry.name, firing.slot, firing.skipped)
        else:
            logger.info("Schedule %r: job %s for slot %s.", entry.name, firing.job.id, firing.slot)
        return firing.job
