"""Deadlines on the embedded default (SQLite): the door's ORM path refuses a start past the deadline
and expires the job, the sweep ends a paused queue's job past it, a create checks it; the migration
(the partial index included) applies."""

from taskhub.testing import embedded_shell

DEADLINES = """
import json, warnings
from datetime import timedelta
from django.utils import timezone
from jobs.models import Job
from jobs.queues.services import queue_pause
from jobs.services.creation import job_create
from jobs.services.execution import job_start
from jobs.services.recovery import job_expire_due
from jobs.tests.factories import kinds, make
from taskhub.errors import InvalidInput
warnings.simplefilter("error")  # a naive datetime given to a DateTimeField: a RuntimeWarning
past = timezone.now() - timedelta(seconds=1)
late = make(dispatched_at=past, expires_at=past)
in_time = make(dispatched_at=past, expires_at=timezone.now() + timedelta(minutes=5))
started = [job_start(job_id=job.id, worker="w:1", attempts=0) is not None for job in (late, in_time)]
queue_pause(queue="low_priority", by=None, source="command")
held = make(priority="low", expires_at=past)
swept = job_expire_due()
try:
    job_create(owner=late.owner, celery_task_name="long_running_task", args=[1], expires_at=past)
    refused = None
except InvalidInput as exc:
    refused = sorted(exc.fields)
created = job_create(owner=late.owner, celery_task_name="long_running_task", args=[1], expires_in=60)
rows = {name: Job.objects.get(id=job.id) for name, job in (("late", late), ("in_time", in_time), ("held", held))}
print("RESULT " + json.dumps({
    "started": started,
    "statuses": {name: row.status for name, row in rows.items()},
    "never_started": [rows["late"].started_at is None, rows["held"].started_at is None],
    "timeline": [kinds(late), kinds(held)],
    "swept": swept,
    "refused": refused,
    "deadline": Job.objects.get(id=created.id).expires_at is not None,
}))
"""


def test_deadlines_on_sqlite(tmp_path):
    assert embedded_shell(DEADLINES, var_dir=tmp_path) == {
        "started": [False, True],
        "statuses": {"late": "expired", "in_time": "running", "held": "expired"},
        "never_started": [True, True],
        "timeline": [["created", "expired"], ["created", "expired"]],
        "swept": 1,
        "refused": ["expires_at"],
        "deadline": True,
    }
