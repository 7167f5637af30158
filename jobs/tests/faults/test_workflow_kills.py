"""The fault suite's workflow scenario (issue 22): 10 random 50-step DAGs while worker processes are
SIGKILLed, with the production recovery settings (no interval shortened: a killed step is re-queued
once its heartbeat is JOB_STALE_AFTER, 60 s, old, by beat's sweep every 10 s).

The 10 DAGs run at once on the same workers (their recovery waits overlap: one minute of staleness
for all of them, not ten); each gets 2-3 SIGKILLs at random moments of its first 30 s, each aimed at
a process running one of its steps mid-step (a step of 1-2 s that started at least 0.3 s before): a
pool child (Celery's main process starts another) or the whole worker (main and pool, started again
at once as a supervisor would). Per DAG: every step ran to success exactly once as far as its row and
timeline say (a step started again only when it was cut short by a kill: at least once), no step
started before all its parents had succeeded (the rows' own times), every step released exactly once
(its parents_remaining 0, never below; a second start only after a re-queue), none left pending, the
workflow succeeded.

Seeded: WORKFLOW_KILL_SEED=<n> replays a run (the DAGs and the kills' choices; the moments at which
processes run steps vary). The seed is printed first, so it shows with a failure's output.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict

import pytest
from django.db.models import Max

from accounts.tests.factories import UserFactory
from jobs.models import Job, Workflow, WorkflowDependency
from jobs.tests.factories import timeline
from jobs.workflows import workflow_create
from taskhub.testing import PRODUCTION_RECOVERY
from taskhub.testing.faults import outcome

pytestmark = [pytest.mark.faults, pytest.mark.worker, pytest.mark.timeout(420)]

RUNS, STEPS, KILL_WINDOW = 10, 50, (3.0, 30.0)
WORKERS, CONCURRENCY = 2, 4
STALE = float(PRODUCTION_RECOVERY["JOB_STALE_AFTER"])
SWEEP = float(PRODUCTION_RECOVERY["JOB_SWEEP_INTERVAL"])
SLACK = 45.0  # the DAGs' own work after the last recovery, and process start-up on a busy machine


def random_dag(rng: random.Random) -> list[dict]:
    """50 steps in 5 layers of 10, each step after 1-2 steps of the layer before (chains, and fan-outs:
    a step several of the next layer pick) or, one in six, a fan-in of 4-8 earlier steps (and always
    the last step: a run of 40 draws without one, 0.07 % of DAGs, would test no fan-in); the first
    layer's steps are roots. Wide enough that a kill blocks only its step's descendants. Steps sleep
    0-2 s, so that kills land mid-step."""
    layers = [[f"s{layer * 10 + n}" for n in range(10)] for layer in range(STEPS // 10)]
    steps: list[dict] = []
    for layer, names in enumerate(layers):
        earlier = [name for previous in layers[:layer] for name in previous]
        for name in names:
            if not layer:
                after = []
            elif rng.random() < 1 / 6 or name == layers[-1][-1]:
                after = rng.sample(earlier, k=min(len(earlier), rng.randint(4, 8)))  # a fan-in
            else:
                after = rng.sample(layers[layer - 1], k=rng.choice([1, 1, 2]))
            seconds = rng.choice([0, 1, 1, 2])
            steps.append(
                {"id": name, "task": "long_running_task", "kwargs": {"seconds": seconds}, "after": after,
                 "max_retries": 3}
            )  # fmt: skip
    return steps


def kill_plan(rng: random.Random, started: float) -> list[tuple[float, int, str]]:
    """(moment, run, how) for every kill: 2-3 per run, at random moments of the window."""
    plan = []
    for run in range(RUNS):
        for _ in range(rng.choice([2, 3])):
            plan.append((started + rng.uniform(*KILL_WINDOW), run, rng.choice(["pool child", "pool child", "worker"])))
    return sorted(plan)


def target(run_id, rng: random.Random, long_steps: set) -> Job | None:
    """A step of the run in the middle of its work: 1-2 s long, started at least 0.3 s ago."""
    running = [
        job
        for job in Job.objects.filter(workflow_id=run_id, status="running").only("id", "worker", "started_at")
        if job.id in long_steps and job.worker and time.time() - job.started_at.timestamp() >= 0.3
    ]
    return rng.choice(running) if running else None


def test_random_dags_survive_worker_sigkills(request, stack):
    runs = RUNS
    seed = int(os.environ.get("WORKFLOW_KILL_SEED") or random.SystemRandom().randrange(10**6))
    print(f"\nrandom DAGs: seed {seed} (replay: WORKFLOW_KILL_SEED={seed})", file=sys.stderr, flush=True)
    rng = random.Random(seed)
    owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)
    workers = [stack.worker(concurrency=CONCURRENCY, wait=False) for _ in range(WORKERS)]
    stack.housekeeping()
    stack.wait_ready()

    started = time.time()
    dags = [random_dag(rng) for _ in range(runs)]
    flows = [workflow_create(owner=owner, name=f"random-{seed}-{n}", steps=dag) for n, dag in enumerate(dags)]
    ids = [flow.id for flow in flows]
    long_steps = set(Job.objects.filter(workflow_id__in=ids, kwargs__seconds__gte=1).values_list("id", flat=True))
    kills: list[tuple[float, int, str, list[int]]] = []  # (moment, run, how, pids killed)
    due = kill_plan(rng, started)
    while due:  # each kill at its moment, or as soon after it as its DAG runs a step mid-way
        for planned in [p for p in due if p[0] <= time.time()]:
            _, run, how = planned
            pids = kill(target(ids[run], rng, long_steps), how, workers, stack)
            if pids or Workflow.objects.filter(id=ids[run], status="succeeded").exists():
                due.remove(planned)
            if pids:
                kills.append((time.time(), run, how, pids))
        time.sleep(0.1)
    rows = Job.objects.filter(workflow_id__in=ids)
    settle(ids, timeout=300)
    wall = time.time() - started  # from the first create to the last DAG's end
    cut = cut_short(ids, kills)
    result = outcome(
        request=request,
        expected=dict.fromkeys([str(i) for i in rows.values_list("id", flat=True)], "succeeded"),
        fault_at=kills[0][0],
        twice_allowed=len(cut),
        timeout=300,
        within=round(kills[-1][0] - kills[0][0] + STALE + 2 * SWEEP + SLACK, 1),
        note=(
            f"{runs} random {STEPS}-step DAGs at once (seed {seed}), {len(kills)} SIGKILLs "
            f"({sum(1 for k in kills if k[2] == 'worker')} whole workers), all ended {wall:.0f} s after the "
            "creates; only steps cut short ran twice"
        ),
    )
    for run, flow_id in enumerate(ids):
        check_run(flow_id, kills=[k for k in kills if k[1] == run], cut=cut, seed=seed, run=run)
    print(
        f"\nrandom DAGs (seed {seed}): {runs} x {STEPS} steps, {len(kills)} SIGKILLs, {result.twice} steps ran "
        f"twice, {result.late_sends} late sends, wall {wall:.0f}s",
        file=sys.stderr,
    )


def settle(ids, *, timeout: float) -> None:
    """Wait until every DAG has ended (or ``timeout``): the steps cut short are counted from the whole
    timelines."""
    deadline = time.monotonic() + timeout
    while Workflow.objects.filter(id__in=ids, status__in=["pending", "running"]).exists():
        if time.monotonic() > deadline:
            return
        time.sleep(0.5)


def kill(victim: Job | None, how: str, workers: list, stack) -> list[int]:
    """SIGKILL the pool child running ``victim`` or its whole worker (then start another in its place,
    as a supervisor would); the pids killed (none when the step's process is already gone)."""
    if victim is None:
        return []
    pid = int(victim.worker.rsplit(":", 1)[1])
    worker = next((w for w in workers if pid in w.pool_pids()), None)
    if worker is None:
        return []  # the step ended meanwhile, or its process died with its worker
    if how == "worker":
        pids = worker.pool_pids()
        worker.kill()
        workers[workers.index(worker)] = stack.worker(concurrency=CONCURRENCY, wait=False)
        return pids
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return []
    return [pid]


def cut_short(ids, kills) -> set:
    """The steps a kill cut short: started (their timeline) by a killed process before its kill, and not
    succeeded by then."""
    started, succeeded = defaultdict(list), defaultdict(list)
    for job in Job.objects.filter(workflow_id__in=ids):
        for line in timeline(job, "started", "succeeded"):
            (started if line.kind == "started" else succeeded)[job.id].append((line.actor_label, line.at.timestamp()))
    killed = [(f":{pid}", moment) for moment, _, _, pids in kills for pid in pids]
    return {
        job_id
        for job_id, starts in started.items()
        for label, at in starts
        for pid, moment in killed
        if label.endswith(pid) and at <= moment and not any(done <= moment for _, done in succeeded[job_id])
    }


def check_run(flow_id, *, kills, cut: set, seed: int, run: int) -> None:
    where = f"seed {seed}, DAG {run}"
    assert 2 <= len(kills) <= 3, f"{where}: {len(kills)} kills landed mid-step"
    flow = Workflow.objects.get(id=flow_id)
    steps = {job.id: job for job in Job.objects.filter(workflow_id=flow_id)}
    assert (flow.status, flow.steps_succeeded, len(steps)) == ("succeeded", STEPS, STEPS), where
    assert {job.status for job in steps.values()} == {"succeeded"}, where  # 0 lost, 0 left pending
    assert {job.parents_remaining for job in steps.values()} == {0}, where  # each parent counted once
    every = {job_id: timeline(job) for job_id, job in steps.items()}
    lines = Counter((job_id, line.kind) for job_id, job_lines in every.items() for line in job_lines)
    for job_id, job in steps.items():
        step = f"{where}, step {job.workflow_step}"
        assert lines[job_id, "succeeded"] == 1, step  # ran to success exactly once
        # Started again only after a kill cut it short and the sweeper re-queued it (at least once).
        assert lines[job_id, "started"] == 1 + lines[job_id, "requeued"], step
        assert lines[job_id, "started"] == 1 or job_id in cut, step
    succeeded_at = {job_id: min(line.at for line in every[job_id] if line.kind == "succeeded") for job_id in steps}
    first_start = {job_id: min(line.at for line in every[job_id] if line.kind == "started") for job_id in steps}
    parents = defaultdict(list)
    for parent, child in WorkflowDependency.objects.filter(child_id__in=steps).values_list("parent_id", "child_id"):
        parents[child].append(parent)
    for child, its in parents.items():  # no step started before every parent had succeeded
        step = f"{where}, step {steps[child].workflow_step}"
        assert first_start[child] >= max(succeeded_at[p] for p in its), step
        assert steps[child].started_at >= max(steps[p].finished_at for p in its), step
    assert any(len(its) >= 4 for its in parents.values()), f"{where}: no fan-in"
    last = Job.objects.filter(workflow_id=flow_id).aggregate(last=Max("finished_at"))["last"]
    assert flow.finished_at >= last, where
