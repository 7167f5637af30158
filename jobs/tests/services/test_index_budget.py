"""What an ordinary job costs jobs_job's indexes, and which index each query that reads them uses
(issue 20, Performance II; migration 0020, bench/README "The index reshape").

An ordinary job writes three row versions (the insert, the start, the finish); none is a HOT update
(status changes, and status is in the partial indexes' conditions), so every index whose predicate
holds for a version gets an entry for it. The budget below is what each version writes: an index added to it
costs every job up to three entries (~80-160 B of WAL each; bench/throughput.py prints them).

The plans: at any size the planner may pick an index; here sequential scans and sorts are made
expensive (``enable_seqscan``, ``enable_sort`` off) to prove that an index can serve each query, in
the order it asks for. bench/index_plans.py shows the same queries at 1,000,000 jobs.
"""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.models import NOT_RUNNING, Job, JobStatus
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_start, job_succeed
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db

ITEM = {"name": "ordinary", "celery_task_name": "long_running_task", "kwargs": {"seconds": 0}}


def index_predicates() -> dict[str, tuple[str, str | None]]:
    """jobs_job's indexes: name -> (access method, predicate or None)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """SELECT c.relname, am.amname, pg_get_expr(i.indpred, i.indrelid)
                 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
                WHERE i.indrelid = 'jobs_job'::regclass"""
        )
        return {name: (method, predicate) for name, method, predicate in cursor.fetchall()}


@pytest.fixture
def versions():
    """Every version of jobs_job's rows written by an insert or a change of status, kept in a
    temporary table of jobs_job's shape (a trigger, dropped afterwards)."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE job_versions (LIKE jobs_job)")
        cursor.execute(
            """CREATE FUNCTION test_keep_job_version() RETURNS trigger LANGUAGE plpgsql AS
               $$ BEGIN INSERT INTO job_versions SELECT NEW.*; RETURN NEW; END $$"""
        )
        cursor.execute(
            "CREATE TRIGGER test_job_inserted AFTER INSERT ON jobs_job FOR EACH ROW "
            "EXECUTE FUNCTION test_keep_job_version()"
        )
        cursor.execute(
            "CREATE TRIGGER test_job_status AFTER UPDATE ON jobs_job FOR EACH ROW "
            "WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION test_keep_job_version()"
        )
    yield "job_versions"
    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_job_inserted ON jobs_job")
        cursor.execute("DROP TRIGGER test_job_status ON jobs_job")
        cursor.execute("DROP FUNCTION test_keep_job_version()")
        cursor.execute("DROP TABLE job_versions")


def entries_per_index(table: str) -> dict[str, int]:
    """How many of the kept versions each index holds an entry for (its predicate, if any, holds)."""
    counts = {}
    with connection.cursor() as cursor:
        for name, (_, predicate) in index_predicates().items():
            cursor.execute(f"SELECT count(*) FROM {table} WHERE {predicate or 'true'}")
            if found := cursor.fetchone()[0]:
                counts[name] = found
    return counts


@pytest.mark.django_db(transaction=True)
def test_an_ordinary_job_writes_ten_btree_entries_in_its_three_versions(user, versions):
    """Before 0020: 24 (the status, task and task_type list indexes, three each, and the active
    partials: 5); before 0026: 13 (the two list orders at each version, job_active at the insert and
    the start). Now the primary key at each version, the two list orders at the insert and the finish
    (they leave running jobs out), job_pending at the insert, job_running at the start, job_finished
    at the finish. The GIN index of
    kwargs holds a job with kwargs pending and ended, not running (none of one without: migration 0014).
    Created in a transaction of its own, as a request creates it: sent before the commit, so inserted
    already marked sent (outside job_undispatched)."""
    [job] = job_create_bulk(owner=user, items=[ITEM])
    started = job_start(job_id=job.id, worker="w:1")
    job_succeed(job_id=job.id, attempts=started.attempts, result=None, worker="w:1")
    assert Job.objects.get(id=job.id).status == JobStatus.SUCCEEDED
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT status FROM {versions} ORDER BY coalesce(finished_at, started_at, created_at)")
        assert [row[0] for row in cursor.fetchall()] == ["pending", "running", "succeeded"]
    methods = {name: method for name, (method, _) in index_predicates().items()}
    written = entries_per_index(versions)
    btree = {name: count for name, count in written.items() if methods[name] == "btree"}
    assert btree == {
        "jobs_job_pkey": 3,
        "job_owner_created": 2,
        "job_created": 2,
        "job_pending": 1,
        "job_running": 1,
        "job_finished": 1,
    }
    assert sum(btree.values()) == 10
    # The GIN index of kwargs leaves out the running version (migration 0024): a running job is found
    # through job_running. (Before: one entry per version, 3: 474 of 2,508 B.)
    assert {name: count for name, count in written.items() if methods[name] == "gin"} == {"job_kwargs_gin": 2}


def test_no_jobs_job_index_but_the_primary_key_holds_every_row():
    """Every other index is partial: a full one would cost each job three entries. The list orders
    leave out running jobs (0026), which job_running holds."""
    predicates = index_predicates()
    assert {name for name, (method, predicate) in predicates.items() if predicate is None} == {"jobs_job_pkey"}
    for name in ("job_owner_created", "job_created"):
        assert predicates[name][1] == "(NOT ((status)::text = 'running'::text))", name
    assert predicates["job_running"][1] == "((status)::text = 'running'::text)"


def plan(sql: str, params=None, *, off=("enable_seqscan", "enable_sort", "enable_bitmapscan")) -> str:
    """``sql``'s plan with the methods ``off`` made expensive (the others as they are by default: a
    setting of an earlier call in the transaction does not stay)."""
    with connection.cursor() as cursor:
        for setting in ("enable_seqscan", "enable_sort", "enable_bitmapscan"):
            cursor.execute(f"SET LOCAL {setting} = {'off' if setting in off else 'on'}")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def queryset_plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    return plan(sql, params)


def test_each_query_of_a_dropped_or_merged_index_has_an_index_in_its_order(user, analyzed_jobs):
    """The queries that read job_status_created, job_task_created, job_type_created, job_owner_active
    or job_active_queue_task before 0020."""
    from jobs.observability.collector import active_counts, running_per_worker
    from jobs.selectors import dead_job_counts
    from jobs.services.retention import _expired_jobs

    cutoff = timezone.now() - timedelta(days=7)
    stale = timezone.now() - timedelta(minutes=5)
    page = ("-created_at", "-id")
    expected = {
        # The list's ?status= of a rare end, newest first: no sort.
        "failed page": (Job.objects.filter(status=JobStatus.FAILED).order_by(*page)[:51], "job_unsuccessful_created"),
        "an owner's failed page": (
            Job.objects.filter(owner=user, status=JobStatus.FAILED).order_by(*page)[:51],
            "job_",
        ),
        # ?task= and ?task_type= walk the list's order (the cursor scan), staff and owners: the branch
        # of the jobs not running (the running ones are read apart: test_running_apart).
        "task page": (Job.objects.filter(NOT_RUNNING, celery_task_name="x").order_by(*page)[:51], "job_created"),
        "an owner's task_type page": (
            Job.objects.filter(NOT_RUNNING, owner=user, task_type="x").order_by(*page)[:51],
            "job_owner_created",
        ),
        "retention, succeeded": (
            _expired_jobs(JobStatus.SUCCEEDED, cutoff).order_by("created_at", "id")[:500],
            "job_created",
        ),
        "retention, failed": (
            _expired_jobs(JobStatus.FAILED, cutoff).order_by("created_at", "id")[:500],
            "job_unsuccessful_created",
        ),
        # The active jobs, whatever their order (the model's default order, which job_created gives,
        # is left out: sorts are off here, and PostgreSQL sorts these few rows).
        "stale running jobs": (
            Job.objects.filter(status=JobStatus.RUNNING, heartbeat_at__lt=stale).order_by(),
            "job_running",
        ),
        "running per worker": (
            Job.objects.filter(status=JobStatus.RUNNING).values("worker").order_by(),
            "job_running",
        ),
        "pending sweep": (Job.objects.filter(status=JobStatus.PENDING, parents_remaining=0).order_by(), "job_pending"),
    }
    for name, (queryset, index) in expected.items():
        found = queryset_plan(queryset)
        assert any(f" {one}" in found for one in ((index,) if isinstance(index, str) else index)), (name, found)
        assert "Seq Scan" not in found and "Sort" not in found, (name, found)
    # The services that read them answer (their statements are the querysets' above).
    assert sum(row["count"] for row in active_counts()) == 12
    assert sum(running_per_worker().values()) == 6 and dead_job_counts()[0]["count"] == 10
    # A quota's count of an owner's active jobs: a range of job_pending (owner first) and the running
    # ones of job_running; of the jobs submitted in the last minute: a range of job_owner_created and
    # the running ones of job_running. A fair share's count of a user's running jobs: job_running.
    # The statements are the services' own, captured at a create and at a start over the owner's share.
    type(user).objects.filter(pk=user.pk).update(max_active_jobs=100, max_jobs_per_minute=100, max_running_jobs=1)
    user.refresh_from_db()
    with CaptureQueriesContext(connection) as create:
        job_create(owner=user, celery_task_name="long_running_task", kwargs={"seconds": 0})
    [counts] = [query["sql"] for query in create.captured_queries if "AS active" in query["sql"]]
    counts = plan(counts)
    assert re.search(r"using job_pending on .*\n\s+Index Cond: \(owner_id = ", counts), counts
    assert re.search(r"using job_owner_created on .*\n\s+Index Cond: \(\(owner_id = ", counts), counts
    assert counts.count("using job_running on") == 2, counts
    assert "Seq Scan" not in counts, counts
    make("running", owner=user)
    with CaptureQueriesContext(connection) as start:
        assert job_start(job_id=make("pending", owner=user).id, worker="w:1") is None  # over the share: deferred
    [running] = [query["sql"] for query in start.captured_queries if "AS running" in query["sql"]]
    running = plan(running)
    assert "using job_running on" in running and "Seq Scan" not in running, running
