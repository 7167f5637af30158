"""Unique jobs on the embedded default (SQLite): its own partial unique index, the insert in a
savepoint and the holder read on a conflict give the same answers as PostgreSQL's ON CONFLICT."""

from taskhub.testing.processes import embedded_shell

POLICIES = """
import json
from datetime import timedelta
from django.db.models import F
from accounts.models import User
from jobs.models import Job
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_start, job_succeed
LONG = "jobs.tasks.common_tasks.long_running_task"
owner = User.objects.create(username="keyed", email="keyed@example.com")
def create(policy, key, seconds=1, **rule):
    job = job_create(owner=owner, celery_task_name=LONG, args=[seconds], unique={"key": key, "policy": policy, **rule})
    return job, job.dedupe_outcome
out = {}
first, _ = create("reject", "r")
out["reject"] = [create("reject", "r")[0].id == first.id, create("reject", "r")[1]]
job_start(job_id=first.id, worker="w")
job_succeed(job_id=first.id, attempts=0, worker="w")
out["released"] = create("reject", "r")[0].id != first.id
first, _ = create("replace", "p")
out["replace"] = [create("replace", "p", seconds=7)[1], Job.objects.get(id=first.id).args]
first, _ = create("keep_latest", "k")
job_start(job_id=first.id, worker="w")
out["keep_latest"] = [create("keep_latest", "k", seconds=3)[1], create("keep_latest", "k", seconds=4)[1]]
job_succeed(job_id=first.id, attempts=0, worker="w")
out["follow_up"] = list(Job.objects.filter(unique_key="k").exclude(id=first.id).values_list("args", flat=True))
first, _ = create("throttle", "t", period=60)
out["throttle"] = create("throttle", "t", period=60)[1]
Job.objects.filter(id=first.id).update(created_at=F("created_at") - timedelta(seconds=61))
out["taken_over"] = create("throttle", "t", period=60)[0].id != first.id
first, _ = create("cancel_running", "c")
job_start(job_id=first.id, worker="w")
second, outcome = create("cancel_running", "c")
out["cancel_running"] = [outcome, second.id != first.id]
jobs = job_create_bulk(owner=owner, items=[{"celery_task_name": LONG, "unique": {"key": "b"}}] * 3)
out["bulk"] = [len({job.id for job in jobs}), [job.dedupe_outcome for job in jobs]]
from jobs.services.deduplicated import deduplicated_totals
from jobs.services.operations import job_delete
before = deduplicated_totals()
job_delete(job_id=Job.objects.get(unique_key="r", status="succeeded").id)  # folded into the totals
out["counted"] = sorted([outcome, count] for (task, outcome), count in deduplicated_totals().items())
out["kept"] = deduplicated_totals() == before
print("RESULT " + json.dumps(out))
"""


def test_every_policy_answers_the_same_on_sqlite(tmp_path):
    assert embedded_shell(POLICIES, var_dir=tmp_path, no_warnings=False) == {
        "reject": [True, "existing"],
        "released": True,
        "replace": ["replaced", [7]],
        "keep_latest": ["follow_up_queued", "follow_up_queued"],
        "follow_up": [[4]],
        "throttle": "throttled",
        "taken_over": True,
        "cancel_running": ["cancelled_running", True],
        "bulk": [1, [None, "existing", "existing"]],
        # /metrics' taskhub_jobs_deduplicated_total, on SQLite too; a deleted job's counts stay.
        "counted": [
            ["cancelled_running", 1],
            ["existing", 4],
            ["follow_up_queued", 2],
            ["replaced", 1],
            ["throttled", 1],
        ],
        "kept": True,
    }
