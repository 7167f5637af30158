"""Rate limits on the embedded default (SQLite): a start's time comes back from the UPDATE's
RETURNING as a timezone-aware datetime, so claiming a slot logs no naive-datetime RuntimeWarning."""

from taskhub.testing import embedded_shell

START_UNDER_A_LIMIT = """
import json, warnings
from datetime import timedelta
from django.utils import timezone
from accounts.models import User
from jobs.models import Job
from jobs.queues.services import rate_limit_set
from jobs.services.execution import job_start
from jobs.tests.factories import make
warnings.simplefilter("error")  # a naive datetime given to a DateTimeField: a RuntimeWarning
owner = User.objects.create(username="limited", email="limited@example.com", max_running_jobs=0)  # 0: no share cap
rate_limit_set(scope="queue", name="default", limit=2, period=10, by=None, source="command")
jobs = [make(owner=owner, dispatched_at=timezone.now() - timedelta(seconds=1)) for _ in range(3)]
started = [job_start(job_id=job.id, worker="w:1", attempts=0) for job in jobs]
rows = [Job.objects.get(id=job.id) for job in jobs]
print("RESULT " + json.dumps({
    "started": [job is not None for job in started],
    "aware": [timezone.is_aware(job.started_at) for job in started if job is not None],
    "statuses": [row.status for row in rows],
    "deferred": rows[2].run_at == rows[0].started_at + timedelta(seconds=10),
}))
"""


def test_a_rate_limited_start_on_sqlite_uses_aware_times(tmp_path):
    assert embedded_shell(START_UNDER_A_LIMIT, var_dir=tmp_path) == {
        "started": [True, True, False],
        "aware": [True, True],
        "statuses": ["running", "running", "pending"],
        "deferred": True,
    }
