"""A run's start, progress and success are SQL written once on PostgreSQL (``jobs.services._sql``,
through the door ``_state``): they must leave exactly the rows and timeline lines the ORM's
transitions leave, in every case the conditions decide (due or not, which attempt, paused queue,
cancelled, finished, gone)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import Job, JobEvent, QueueControl
from jobs.services.execution import RunState, job_start, job_succeed, job_update_progress
from jobs.services.gates import limits_for, workers_alive_for
from jobs.tests.factories import make, timeline
from taskhub.errors import Conflict, NotFound

pytestmark = pytest.mark.django_db

# Columns the two paths set from a clock (each run reads its own): compared by being set or not.
CLOCKS = ("started_at", "heartbeat_at", "finished_at", "cancel_requested_at")


def twins(status="pending", **fields):
    """Two identical rows (but their ids)."""
    now = timezone.now()
    return make(status, created_at=now, **fields), make(status, created_at=now, **fields)


def row(job) -> dict:
    values = Job.objects.filter(id=job.id).values().get()
    for name in ("id", "name", "owner_id", "created_at", "dispatched_at"):
        values.pop(name)
    for name in CLOCKS:
        values[name] = values[name] is not None
    return values


def lines(job) -> list[tuple]:
    """The job's timeline as its readers see it (real and derived lines: ``jobs.timeline``)."""
    fields = ("kind", "from_status", "to_status", "actor_id", "actor_label", "message", "data")
    return [tuple(getattr(line, name) for name in fields) for line in timeline(job)]


def ran(job) -> list[tuple]:
    """``lines`` but the created line (derived: each twin has an owner of its own)."""
    return [line for line in lines(job) if line[0] != "created"]


@pytest.fixture
def through_the_orm(monkeypatch):
    """Run a service with the hot path switched off (as on SQLite)."""

    def run(service, **kwargs):
        with monkeypatch.context() as patch:
            patch.setattr("jobs.services._sql.available", lambda alias="default": False)
            return service(**kwargs)

    return run


def outcome(service, **kwargs):
    try:
        return ("ok", service(**kwargs))
    except (Conflict, NotFound) as exc:
        return (type(exc).__name__, exc.code)


def compare(hot, orm, through_the_orm, service, **kwargs):
    """The service on ``hot`` by the hot path and on ``orm`` through the ORM: same answer, rows, lines."""
    fast = outcome(service, job_id=str(hot.id), **kwargs)
    slow = outcome(lambda **kw: through_the_orm(service, **kw), job_id=str(orm.id), **kwargs)
    if service is job_start:  # a Job, or None
        fast, slow = [(kind, value and value.attempts) for kind, value in (fast, slow)]
    assert fast == slow
    assert row(hot) == row(orm)
    assert ran(hot) == ran(orm)
    return fast


@pytest.mark.parametrize(
    ("fields", "attempts", "starts"),
    [
        ({}, None, True),
        ({"attempts": 2}, 2, True),
        ({"attempts": 2}, 1, False),  # a message of another attempt
        ({"run_at": timedelta(minutes=5)}, None, False),  # a duplicate before its backoff ends
        ({"run_at": timedelta(seconds=1)}, None, True),  # early by less than the margin
        ({"status": "running"}, None, False),
        ({"status": "succeeded"}, None, False),
    ],
)
def test_start(fields, attempts, starts, through_the_orm):
    fields = dict(fields)  # the parameters are shared by every run of the test
    status = fields.pop("status", "pending")
    if "run_at" in fields:  # due that long from now: now is the test's, not the collection's (minutes before)
        fields["run_at"] = timezone.now() + fields["run_at"]
    hot, orm = twins(status, **fields)
    answer = compare(hot, orm, through_the_orm, job_start, worker="w:1", attempts=attempts)
    assert (answer[1] is not None) is starts
    if starts:
        assert Job.objects.get(id=hot.id).worker == "w:1" and lines(hot)[-1][0] == "started"


def test_start_of_a_paused_queue_holds_it(through_the_orm):
    hot, orm = twins(dispatched_at=timezone.now())
    QueueControl.objects.create(name=hot.queue, paused=True)
    assert compare(hot, orm, through_the_orm, job_start, worker="w:1")[1] is None
    assert Job.objects.get(id=hot.id).dispatched_at is None  # held, both ways


@pytest.mark.parametrize(
    ("status", "fields", "attempts"),
    [
        ("running", {}, 0),
        ("running", {"attempts": 1}, 0),  # re-queued meanwhile: gone
        ("running", {"cancel_requested_at": timezone.now()}, 0),
        ("succeeded", {}, 0),
    ],
)
def test_progress(status, fields, attempts, through_the_orm):
    hot, orm = twins(status, **fields)
    answer = compare(
        hot, orm, through_the_orm, job_update_progress, progress=40, meta={"rows": 3}, message="m", attempts=attempts
    )
    assert answer[1] in (RunState.OK, RunState.GONE, RunState.CANCEL_REQUESTED)


@pytest.mark.parametrize(
    ("status", "fields", "attempts"),
    [("running", {}, 0), ("running", {"attempts": 3}, 3), ("running", {"attempts": 3}, 2), ("revoked", {}, 0)],
)
@pytest.mark.parametrize("result", [None, {"a": [1, "b", None]}, "text", 3.5])
def test_succeed(status, fields, attempts, result, through_the_orm):
    hot, orm = twins(status, **fields)
    compare(hot, orm, through_the_orm, job_succeed, attempts=attempts, result=result, worker="w:1")


@pytest.mark.parametrize("progress_meta", [None, {}, {"message": "9/9 rows", "rows": 9}])
def test_succeed_with_the_report_the_throttle_held(progress_meta, through_the_orm):
    hot, orm = twins("running", progress_meta={"message": "earlier"})
    compare(hot, orm, through_the_orm, job_succeed, attempts=0, result=1, worker="w:1", progress_meta=progress_meta)
    expected = {"message": "earlier"} if progress_meta is None else progress_meta
    assert Job.objects.get(id=hot.id).progress_meta == expected


def test_succeed_of_a_job_that_is_gone():
    with pytest.raises(NotFound):
        job_succeed(job_id="6f1c3a52-0000-4000-8000-000000000000", attempts=0, result=None, worker="w:1")


def test_each_is_one_statement():
    job = make()
    limits_for(queue=job.queue, task=job.celery_task_name)  # rate limits: a per-process cache, read once a second
    workers_alive_for(job.queue)  # the workers alive: a per-process cache, read every 5 s
    with CaptureQueriesContext(connection) as queries:
        started = job_start(job_id=str(job.id), worker="w:1")
        job_update_progress(job_id=job.id, progress=5, attempts=started.attempts)
        job_succeed(job_id=job.id, attempts=started.attempts, result=1, worker="w:1")
    statements = [q["sql"].split()[0] for q in queries.captured_queries if q["sql"].split()[0] != "SAVEPOINT"]
    # The start (which also locks the owner's row and reads their cap), the owner's running count
    # (fair shares: a plain user has a cap), the progress, the success.
    assert [s for s in statements if s != "RELEASE"] == ["WITH", "SELECT", "UPDATE", "WITH"]
    assert [kind for kind, *_ in lines(job)] == ["created", "started", "succeeded"]
    assert JobEvent.objects.filter(job_id=job.id).count() == 0  # each derived from the row (issue 20)


def created_row(job) -> dict:
    values = Job.objects.filter(id=job.id).values().get()
    values.pop("id")
    return values


@pytest.mark.parametrize(
    "request_",
    [
        {"celery_task_name": "long_running_task", "args": [3]},
        {
            "celery_task_name": "process_data",
            "name": "nightly",
            "task_type": "reports",
            "kwargs": {"records": [{"v": 1, "t": "é\\u00e9"}], "group_by": None},
            "priority": "high",
            "max_retries": 0,
            "run_at": timezone.now() + timedelta(hours=1),
        },
    ],
)
@pytest.mark.parametrize("idempotency_key", [None, "key-1"])
def test_create(request_, idempotency_key, user, through_the_orm, django_capture_on_commit_callbacks):
    """A job and its ``created`` line in one statement: the same row, column for column (but the
    id), and the same line as the ORM's two saves."""
    from jobs.services.creation import job_create

    with django_capture_on_commit_callbacks(execute=False), CaptureQueriesContext(connection) as queries:
        hot = job_create(owner=user, idempotency_key=idempotency_key, **request_)
    inserts = [q["sql"] for q in queries.captured_queries if q["sql"].lstrip().startswith(("INSERT", "WITH"))]
    # The job, one statement; its line is derived from the row (issue 20), written only when it cannot be.
    assert len(inserts) == 1 and "INSERT INTO" in inserts[0], inserts
    with django_capture_on_commit_callbacks(execute=False):
        orm = through_the_orm(
            job_create,
            owner=user,
            idempotency_key=None if idempotency_key is None else idempotency_key + "-orm",
            **request_,
        )
    assert hot._state.adding is False and orm._state.adding is False
    fast, slow = created_row(hot), created_row(orm)
    assert fast.pop("created_at") <= slow.pop("created_at")
    if idempotency_key:
        assert (fast.pop("idempotency_key"), slow.pop("idempotency_key")) == ("key-1", "key-1-orm")
    assert fast == slow
    assert lines(hot) == lines(orm) and lines(hot)[0][0] == "created"
    assert Job.objects.get(id=hot.id).created_at == hot.created_at  # the instance is the row


def test_a_bulk_create_is_one_insert_of_arrays_and_writes_what_the_orm_writes(user, through_the_orm):
    """A bulk of jobs without unique keys: one INSERT … SELECT … FROM unnest(…) (each column one array,
    bound on the server: the same text for any number of jobs), rows column for column as Django's
    bulk_create writes them (but ids and times)."""
    from jobs.services.creation import job_create_bulk

    items = [
        {"celery_task_name": "long_running_task", "kwargs": {"seconds": 1}},
        {"celery_task_name": "process_data", "name": "n", "kwargs": {"records": [{"v": 1}]}, "priority": "high"},
        {"celery_task_name": "long_running_task", "args": [2], "max_retries": 0, "run_at": timezone.now()},
    ]
    with CaptureQueriesContext(connection) as queries:
        hot = job_create_bulk(owner=user, items=items)
    inserts = [q["sql"] for q in queries.captured_queries if 'INSERT INTO "jobs_job"' in q["sql"]]
    assert len(inserts) == 1 and "unnest(" in inserts[0], inserts
    orm = through_the_orm(job_create_bulk, owner=user, items=items)
    assert all(job._state.adding is False for job in hot)

    def comparable(job):
        values = created_row(job)
        for name in ("created_at", "dispatched_at", "run_at", "request_fingerprint"):
            values[name] = values[name] is not None
        return values

    assert [comparable(job) for job in hot] == [comparable(job) for job in orm]
    assert {(job.id, job.created_at) for job in hot} == set(
        Job.objects.filter(id__in=[job.id for job in hot]).values_list("id", "created_at")
    )  # the instances are the rows


def test_start_and_success_of_a_keyed_waiting_job(through_the_orm):
    """A job that waited for its concurrency key: both paths clear the wait at the start, and both
    successes free the key (each of its own key here, so that the two do not share a limit)."""
    now = timezone.now()
    hot, orm = (
        make(created_at=now, concurrency_key=key, concurrency_limit=1, concurrency_waiting_since=now)
        for key in ("hot", "orm")
    )

    def same(a, b):
        left, right = row(a), row(b)
        assert left.pop("concurrency_key") == "hot" and right.pop("concurrency_key") == "orm"
        assert left == right and ran(a) == ran(b)

    compare_start = outcome(job_start, job_id=str(hot.id), worker="w:1")
    assert compare_start[0] == "ok" and compare_start[1] is not None
    assert through_the_orm(job_start, job_id=str(orm.id), worker="w:1") is not None
    same(hot, orm)
    assert Job.objects.get(id=hot.id).concurrency_waiting_since is None
    job_succeed(job_id=hot.id, attempts=0, result=1, worker="w:1")
    through_the_orm(job_succeed, job_id=orm.id, attempts=0, result=1, worker="w:1")
    same(hot, orm)


PREPARED = "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql"


def test_the_start_and_success_are_prepared_after_their_fifth_run():
    """With the default DATABASE_PREPARED_STATEMENTS (true) psycopg prepares a statement at its 5th
    run on a connection, and PostgreSQL stops planning it at every call (bench/README.md, "Prepared
    statements": its CPU per job 2.19 -> 0.98 ms in throughput.py). The same answers either way."""
    connection.ensure_connection()
    assert connection.connection.prepare_threshold == 5
    jobs = [make() for _ in range(6)]
    for job in jobs:
        started = job_start(job_id=str(job.id), worker="w:1")
        job_succeed(job_id=job.id, attempts=started.attempts, result={"n": 1}, worker="w:1")
    with connection.cursor() as cursor:
        cursor.execute(PREPARED)
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("SET \"status\" = 'running'" in text for text in prepared), prepared
    assert any("SET \"status\" = 'succeeded'" in text for text in prepared), prepared
    # The owner's running count of the fair share (a plain user has a cap) is bound on the server too.
    assert any(text.startswith("\nSELECT COUNT(*) FROM (") and "'running' LIMIT $2" in text for text in prepared)
    assert all("$1" in text or "%s" not in text for text in prepared)  # bound on the server
    assert [Job.objects.get(id=job.id).status for job in jobs] == ["succeeded"] * 6
    assert Job.objects.get(id=jobs[-1].id).result == {"n": 1}  # the prepared runs wrote what the first ones did


def test_the_creates_quota_count_is_prepared_after_its_fifth_run(user):
    """A create locks its owner's row and counts their jobs (quotas) at every request: bound on the
    server, both are prepared after their 5th run, as the create's INSERT is."""
    from jobs.services.creation import job_create

    for _ in range(6):
        job_create(owner=user, celery_task_name="long_running_task", kwargs={"seconds": 0})
    with connection.cursor() as cursor:
        cursor.execute(PREPARED)
        prepared = [row[0] for row in cursor.fetchall()]
    assert any("FOR NO KEY UPDATE" in text and text.startswith('SELECT 1 FROM "accounts_user"') for text in prepared)
    assert any('AND "created_at" > $2' in text and "AS submitted_running" in text for text in prepared), prepared
    assert any(text.startswith('\nINSERT INTO "jobs_job"') for text in prepared), prepared


@pytest.mark.parametrize("fenced", [False, True])
def test_the_starts_generic_plan_finds_the_job_by_its_primary_key(fenced):
    """A prepared start runs a generic plan, made once for every job id. With ``status = 'pending'``
    written in it, that plan could read the pending jobs' index (job_pending, whose condition it
    implies) whole and filter each entry by id: planned on a nearly empty table it looked as cheap as
    the primary key, then scanned the whole backlog at every start (bench/throughput.py: 0.25 ms a
    start at a 3,000-job backlog, +0.35 ms of PostgreSQL CPU per job). The status is a parameter: only
    the primary key can find the row, whatever the statistics said when it was planned (here: a table
    of 8 jobs, 2 of them pending, analyzed: it reads the primary key or, this small, the table; never
    job_pending). The statement is the one psycopg prepared after 5 starts (fenced: of an attempt, as
    the worker's; or of any)."""
    jobs = [make() for _ in range(8)]
    for job in jobs[:6]:
        assert job_start(job_id=str(job.id), worker="w:1", attempts=0 if fenced else None)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, cardinality(parameter_types) FROM pg_prepared_statements "
            "WHERE NOT from_sql AND statement LIKE %s AND (statement LIKE %s) = %s",
            ["%SET \"status\" = 'running'%", '%"attempts" = $%', fenced],
        )
        [(name, count)] = cursor.fetchall()
        cursor.execute("ANALYZE jobs_job")  # two pending jobs, as when a worker's connection prepares it
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"EXPLAIN EXECUTE {name}({', '.join(['NULL'] * count)})")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "job_pending" not in plan, plan
    assert "jobs_job_pkey" in plan or "Seq Scan on jobs_job" in plan, plan
