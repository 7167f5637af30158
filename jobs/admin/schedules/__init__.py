"""Schedules in the admin: taskhub's own page for django-celery-beat's periodic tasks.

The add and change page is one form (``form``): a catalog task with its parameter table (as the
submit page), its arguments checked against the task's schema, the timing as an interval or a
crontab (five fields and a time zone, no pop-ups) with a preview in words and the next firings
(``jobs.schedules.timing``; ``preview/`` answers it as JSON while the fields change), and the
schedule's recent jobs (``admin``). It saves through ``job_schedule_create`` /
``job_schedule_update``, the API's services: their refusals are shown next to the field they name,
and nothing is written.

Beat's own entries (taskhub's maintenance tasks) are offered to superusers only and saved with
``beat_entry_save``; to other users they are read-only, and forcing one in a POST is refused.
A schedule's name is its owner's (stored as ``user:<id>:<name>``, see jobs/schedules/fields.py).
"""

from .admin import ScheduleAdmin

__all__ = ["ScheduleAdmin"]
