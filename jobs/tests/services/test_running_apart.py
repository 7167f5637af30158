"""Running jobs are read apart (issue 20, migration 0026): the list orders' indexes (``job_owner_created``,
``job_created``) and the pending jobs' one (``job_pending``) leave running jobs out, so a job's start
writes three B-tree entries fewer. Every reader that read running jobs through them reads them from
``job_running`` beside: a page in list order (``JobQuerySet.running_apart``: two branches merged in one
statement), a count or a scan (``either_side_of_running``, ``ACTIVE``).

Here: the pages, counts and lists show every job once, in its place, whatever mix of running and other
jobs; and each reader's statement, captured where the product runs it, has an index for each branch
(sequential scans made expensive, as in ``test_index_budget``).
"""

import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min, Q
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from jobs.admin.pagination import JobPaginator
from jobs.models import Job, either_side_of_running
from jobs.tests.factories import ids, make
from jobs.tests.services.test_index_budget import plan

pytestmark = pytest.mark.django_db

ORDER = ("-created_at", "-id")
# Which of 12 jobs (0 the newest) run: the first and the last, a pair, and one across a page of 3.
RUNNING = (0, 2, 3, 7, 11)
OTHERS = ("pending", "succeeded", "failed", "revoked")


def interleaved(owner, count: int = 12, running=RUNNING, *, start=None) -> list[Job]:
    """``count`` jobs of ``owner`` one second apart, newest first; those at ``running`` running, the
    others pending or finished in turn."""
    start = start or timezone.now()
    return [
        make(
            "running" if n in running else OTHERS[n % len(OTHERS)], owner=owner, created_at=start - timedelta(seconds=n)
        )
        for n in range(count)
    ]


def walk(client, url: str) -> list[str]:
    seen = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += ids(response)
        url = response.json()["next"]
        assert len(seen) < 100
    return seen


def test_api_pages_show_running_jobs_in_their_place(user, other_user, user_client, staff_viewer, staff_client):
    jobs = interleaved(user)
    theirs = interleaved(other_user, start=timezone.now() - timedelta(milliseconds=500))
    expected = [str(job.id) for job in jobs]
    assert walk(user_client, "/api/v1/jobs/?page_size=3") == expected
    assert walk(user_client, "/api/v1/jobs/?page_size=5&ordering=created_at") == expected[::-1]
    # Back from the third page: the second again.
    first = user_client.get("/api/v1/jobs/", {"page_size": 3}).json()
    third = user_client.get(user_client.get(first["next"]).json()["next"]).json()
    assert [job["id"] for job in user_client.get(third["previous"]).json()["results"]] == expected[3:6]
    # Staff: everyone's, merged in order.
    everyone = sorted([*jobs, *theirs], key=lambda job: (job.created_at, job.id), reverse=True)
    assert walk(staff_client, "/api/v1/jobs/?page_size=4") == [str(job.id) for job in everyone]
    # A status filter: the running ones only, and the others only.
    running = [str(jobs[n].id) for n in RUNNING]
    assert walk(user_client, "/api/v1/jobs/?page_size=2&status=running") == running
    assert walk(user_client, "/api/v1/jobs/?page_size=2&status=pending") == [
        str(job.id) for job in jobs if job.status == "pending"
    ]


def test_a_marked_queryset_slices_indexes_and_counts_as_the_plain_one(user):
    interleaved(user, count=9, running=(1, 2, 8))
    plain = Job.objects.order_by(*ORDER)
    apart = plain.running_apart()
    for start, stop in ((0, 9), (0, 1), (1, 3), (2, 4), (3, 9), (7, 20), (9, 12)):
        assert list(apart[start:stop]) == list(plain[start:stop]), (start, stop)
    assert [apart[n] for n in range(9)] == list(plain)
    with pytest.raises(IndexError):
        apart[9]
    assert apart.count() == plain.count() == 9
    assert apart.filter(status="running").count() == 3
    assert list(apart.values_list("id", flat=True)[:4]) == list(plain.values_list("id", flat=True)[:4])
    # One statement for a page: the two branches in a UNION ALL.
    with CaptureQueriesContext(connection) as queries:
        list(apart[2:5])
    assert len(queries) == 1 and "UNION ALL" in queries[0]["sql"]
    # An order the combined statement cannot name (a related field's), or none: read as it is.
    by_owner = Job.objects.order_by("owner__username", "-created_at").running_apart()
    with CaptureQueriesContext(connection) as queries:
        assert list(by_owner[:4]) == list(Job.objects.order_by("owner__username", "-created_at")[:4])
    assert "UNION" not in queries[0]["sql"]


def test_the_admin_list_pages_show_running_jobs_in_their_place(user, admin_client):
    jobs = interleaved(user)
    paginator = JobPaginator(Job.objects.order_by(*ORDER).running_apart(), 5)
    assert paginator.count == 12
    assert [list(paginator.page(n).object_list) for n in (1, 2, 3)] == [jobs[:5], jobs[5:10], jobs[10:]]
    page = admin_client.get("/admin/jobs/job/").content.decode()
    positions = [page.index(f"/admin/jobs/job/{job.id}/change/") for job in jobs]
    assert positions == sorted(positions)


def test_the_admin_date_hierarchy_counts_running_jobs(user, admin_client):
    """Its first and last job (``aggregate`` of Min and Max) and its years, months and days
    (``datetimes``) read both branches: a year or a day that holds only running jobs is shown."""
    make("succeeded", owner=user, created_at=datetime(2024, 3, 1, 12, tzinfo=UTC))
    make("running", owner=user, created_at=datetime(2025, 6, 2, 12, tzinfo=UTC))
    make("running", owner=user, created_at=datetime(2025, 7, 9, 12, tzinfo=UTC))
    marked = Job.objects.running_apart()
    assert marked.aggregate(first=Min("created_at"), last=Max("created_at")) == Job.objects.aggregate(
        first=Min("created_at"), last=Max("created_at")
    )
    assert [moment.year for moment in marked.datetimes("created_at", "year")] == [2024, 2025]
    assert [moment.month for moment in marked.datetimes("created_at", "month", order="DESC")] == [7, 6, 3]
    page = admin_client.get("/admin/jobs/job/").content.decode()
    assert "created_at__year=2024" in page and "created_at__year=2025" in page
    page = admin_client.get("/admin/jobs/job/", {"created_at__year": "2025"}).content.decode()
    assert "created_at__month=6" in page and "created_at__month=7" in page
    with CaptureQueriesContext(connection) as queries:
        list(marked.datetimes("created_at", "year"))
    assert "UNION" in queries[0]["sql"]


def test_the_jobs_list_command_shows_running_jobs_in_their_place(user, capsys):
    jobs = interleaved(user)
    call_command("jobs", "list", "--limit", "6", "--json")
    assert [job["id"] for job in json.loads(capsys.readouterr().out)] == [str(job.id) for job in jobs[:6]]


def test_either_side_of_running_is_the_same_condition(user, other_user):
    interleaved(user)
    interleaved(other_user)
    for condition in (
        Q(owner=user),
        Q(owner=user, status="running"),
        Q(created_at__gte=timezone.now() - timedelta(seconds=4)),
    ):
        assert set(Job.objects.filter(either_side_of_running(condition))) == set(Job.objects.filter(condition))


def job_statements(queries) -> list[str]:
    """The captured statements that read jobs_job (a server-side cursor's: its SELECT)."""
    return [
        query["sql"].partition(" CURSOR FOR ")[2] or query["sql"]
        for query in queries.captured_queries
        if '"jobs_job"' in query["sql"]
    ]


def assert_indexed(sql: str, *indexes: str, bitmaps: bool = False) -> None:
    """``sql``'s plan reads jobs_job through each of ``indexes``, never by a sequential scan."""
    off = ("enable_seqscan",) if bitmaps else ("enable_seqscan", "enable_bitmapscan")
    found = plan(sql, off=off)
    assert "Seq Scan on jobs_job" not in found, found
    for index in indexes:  # a tuple: any of them
        names = "|".join(index if isinstance(index, tuple) else (index,))
        assert re.search(rf"(Index Scan using|Index Only Scan using|Bitmap Index Scan on) ({names}) ", found), found


def test_the_list_pages_read_each_branch_from_its_index(
    analyzed_jobs, user_client, staff_viewer, staff_client, admin_client
):
    for client, index in ((user_client, "job_owner_created"), (staff_client, "job_created")):
        with CaptureQueriesContext(connection) as queries:
            assert client.get("/api/v1/jobs/").status_code == 200
        [page] = job_statements(queries)
        assert "UNION ALL" in page
        assert_indexed(page, index, "job_running")
    with CaptureQueriesContext(connection) as queries:
        assert admin_client.get("/admin/jobs/job/", {"status__exact": "succeeded"}).status_code == 200
    [page] = [sql for sql in job_statements(queries) if "UNION ALL" in sql and "COUNT(" not in sql]
    assert_indexed(page, "job_created")


def test_the_counts_and_scans_read_each_branch_from_its_index(analyzed_jobs, user, admin_client):
    from jobs.observability.collector import active_counts
    from jobs.queues.selectors import queue_list
    from jobs.selectors import notification_recipients_since

    since = (timezone.now() - timedelta(minutes=5)).isoformat()
    with CaptureQueriesContext(connection) as queries:
        answer = admin_client.get("/admin/jobs/job/arrivals/", {"since": since}).json()
    assert answer["new"] == 22  # created in the last 5 minutes: user's 16, other_user's 6 active
    [count] = [sql for sql in job_statements(queries) if "UNION ALL" in sql and '"created_at" >' in sql]
    assert_indexed(count, "job_created", "job_running")
    with CaptureQueriesContext(connection) as queries:
        assert notification_recipients_since(owner_id=user.pk, task_name="x", since=timezone.now()) == 0
    assert_indexed(job_statements(queries)[0], ("job_owner_created", "job_created"), "job_running", bitmaps=True)
    with CaptureQueriesContext(connection) as queries:
        assert sum(row["count"] for row in active_counts()) == 12
        queue_list()
    for sql in job_statements(queries):
        assert_indexed(sql, "job_pending", "job_running", bitmaps=True)
    # The list stream's read: the active jobs and those created since its last read.
    from jobs.streams.feeds import ListScope, _list_read

    scope = ListScope(candidates=Job.objects.filter(owner=user), statuses=frozenset(), owner_id=user.pk, filtered=False)
    with CaptureQueriesContext(connection) as queries:
        assert len(_list_read(scope, [], timezone.now() - timedelta(minutes=5))) == 16
    [read] = job_statements(queries)
    assert "UNION ALL" in read
    assert_indexed(read, ("job_owner_created", "job_created"), "job_running")
