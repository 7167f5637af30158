"""Workflows on the embedded default (SQLite, ``make run``): the ORM paths of the door's release,
the cascade (descendants found one generation at a time), cancel and retry."""

from taskhub.testing.processes import embedded_shell

SCRIPT = """
import json
from accounts.models import User
from jobs.models import Job, Workflow
from jobs.services.execution import job_fail, job_start, job_succeed
from jobs.workflows import workflow_cancel, workflow_create, workflow_retry
user = User.objects.create(username="flow", email="flow@example.com")
def steps(*spec):
    return [{"id": i, "task": "long_running_task", "kwargs": {"seconds": 0}, "after": a} for i, a in spec]
def rows(w):
    return {j.workflow_step: j for j in Job.objects.filter(workflow=w)}
def state(w):
    w.refresh_from_db()
    return [w.status, w.steps_succeeded, w.steps_failed, w.steps_cancelled,
            {k: (j.status, j.parents_remaining) for k, j in sorted(rows(w).items())}]
def run(job, ok=True):
    started = job_start(job_id=job.id, worker="w:1")
    if ok:
        job_succeed(job_id=job.id, attempts=started.attempts, result={"step": job.workflow_step})
    else:
        job_fail(job_id=job.id, attempts=started.attempts, error="boom", auto_retry=False)
out = {}
w = workflow_create(owner=user, name="d", steps=steps(("f", []), ("a", ["f"]), ("a2", ["a"]), ("b", ["f"]),
                                                      ("m", ["a2", "b"])))
r = rows(w)
out["waiting_start"] = job_start(job_id=r["m"].id, worker="w:1") is None
run(r["f"]); run(r["b"]); run(r["a"], ok=False)
out["failed"] = state(w)
workflow_retry(user=user, workflow_id=w.id)
r = rows(w)
run(r["a"]); run(r["a2"]); run(r["m"])
out["retried"] = state(w)
w2 = workflow_create(owner=user, name="c", steps=steps(("f", []), ("g", ["f"])))
job_start(job_id=rows(w2)["f"].id, worker="w:1")
workflow_cancel(user=user, workflow_id=w2.id)
out["cancelled"] = state(w2)
print("RESULT " + json.dumps(out))
"""


def test_workflows_run_on_sqlite(tmp_path):
    out = embedded_shell(SCRIPT, var_dir=tmp_path, no_warnings=False)
    assert out["waiting_start"] is True
    assert out["failed"] == [
        "failed", 2, 1, 2,
        {"a": ["failed", 0], "a2": ["revoked", 1], "b": ["succeeded", 0], "f": ["succeeded", 0], "m": ["revoked", 1]},
    ]  # fmt: skip
    assert out["retried"][:4] == ["succeeded", 5, 0, 0]
    assert out["cancelled"] == ["cancelled", 0, 0, 1, {"f": ["running", 0], "g": ["revoked", 1]}]
