"""Listing jobs: owners see theirs and staff with jobs.view_job all; filters, times in any UTC offset, ordering,
cursor pages and page sizes; malformed parameters are a 400 (in the admin's filters, never a 500);
one statement a page."""

import base64
from datetime import datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job
from jobs.serializers import JobSerializer
from jobs.tests.factories import LONG_RUNNING_TASK, PREFIXES, JobFactory, ids

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK


@pytest.mark.parametrize("prefix", PREFIXES)
def test_owners_list_only_their_jobs_and_staff_list_all(
    user, other_user, user_client, staff_viewer, staff_client, prefix
):
    mine = JobFactory.create_batch(2, owner=user)
    theirs = JobFactory(owner=other_user)
    assert sorted(ids(user_client.get(prefix))) == sorted(str(job.id) for job in mine)
    assert sorted(ids(staff_client.get(prefix))) == sorted(str(job.id) for job in [*mine, theirs])


def test_list_is_newest_first_with_the_job_fields(user, user_client):
    old = JobFactory(owner=user, created_at=timezone.now() - timedelta(hours=1))
    new = JobFactory(owner=user, running=True, progress=40, progress_meta={"message": "halfway"})
    response = user_client.get("/api/v1/jobs/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"next", "previous", "results"}  # cursor pages: no count
    assert ids(response) == [str(new.id), str(old.id)]
    first = body["results"][0]
    assert (
        first["status"],
        first["progress"],
        first["progress_message"],
        first["owner"],
    ) == ("running", 40, "halfway", user.username)


def test_list_filters(user, user_client):
    now = timezone.now()
    pending = JobFactory(
        owner=user,
        name="nightly report",
        task_type="reports",
        created_at=now - timedelta(days=3),
    )
    failed = JobFactory(
        owner=user,
        failed=True,
        priority="high",
        task_type="reports",
        created_at=now - timedelta(days=2),
    )
    running = JobFactory(
        owner=user,
        running=True,
        priority="low",
        celery_task_name="jobs.tasks.common_tasks.process_data",
        created_at=now - timedelta(days=1),
    )
    done = JobFactory(owner=user, succeeded=True, name="Weekly REPORT", created_at=now)

    def listed(**params) -> set[str]:
        response = user_client.get("/api/v1/jobs/", params)
        assert response.status_code == 200, response.content
        return set(ids(response))

    assert listed(status="pending") == {str(pending.id)}
    assert listed(status=["pending", "failed"]) == {str(pending.id), str(failed.id)}
    assert listed(priority="high") == {str(failed.id)}
    assert listed(priority=["high", "low"]) == {str(failed.id), str(running.id)}
    assert listed(task="jobs.tasks.common_tasks.process_data") == {str(running.id)}
    assert listed(task="data_processing") == {str(running.id)}  # an alias
    assert listed(task="app.tasks.common_tasks.long_running_task") == {
        str(pending.id),
        str(failed.id),
        str(done.id),
    }
    assert listed(task="no.such.task") == set()
    assert listed(task_type="reports") == {str(pending.id), str(failed.id)}
    assert listed(created_after=(now - timedelta(days=2, hours=1)).isoformat()) == {
        str(failed.id),
        str(running.id),
        str(done.id),
    }
    assert listed(created_before=(now - timedelta(days=1, hours=1)).isoformat()) == {
        str(pending.id),
        str(failed.id),
    }
    assert listed(
        created_after=(now - timedelta(days=2, hours=1)).isoformat(),
        created_before=(now - timedelta(hours=1)).isoformat(),
    ) == {str(failed.id), str(running.id)}
    assert listed(search="report") == {str(pending.id), str(done.id)}
    assert listed(search="report", status="succeeded") == {str(done.id)}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"created_after": "yesterday"}, "created_after"),
        ({"created_before": "2024-13-45"}, "created_before"),
        ({"status": "done"}, "status"),
        ({"priority": "asap"}, "priority"),
    ],
)
def test_list_with_a_malformed_filter_is_refused(user_client, params, field):
    assert_error(user_client.get("/api/v1/jobs/", params), 400, code="invalid", field=field)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # Python reads offsets up to ±23:59, PostgreSQL only ±15:59: compared in UTC they all work.
        ("2020-01-01T00:00:00-16:05", "2020-01-01T16:05:00+00:00"),
        ("2020-01-01T00:00:00+23:59", "2019-12-31T00:01:00+00:00"),
        ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00+00:00"),
    ],
)
def test_time_filters_with_any_utc_offset_compare_in_utc(user, user_client, value, expected):
    before = JobFactory(owner=user, created_at=datetime.fromisoformat(expected) - timedelta(seconds=1))
    after = JobFactory(owner=user, created_at=datetime.fromisoformat(expected) + timedelta(seconds=1))
    assert ids(user_client.get("/api/v1/jobs/", {"created_after": value})) == [str(after.id)]
    assert ids(user_client.get("/api/v1/jobs/", {"created_before": value})) == [str(before.id)]


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
@pytest.mark.parametrize("field", ["created_after", "created_before"])
def test_time_filters_beyond_the_calendar_are_refused(user_client, field, value):
    error = assert_error(user_client.get("/api/v1/jobs/", {field: value}), 400, code="invalid", field=field)
    assert "out of range" in error["message"]


@pytest.mark.parametrize("param", ["search", "task", "task_type", "owner", "status", "cursor", "ordering"])
def test_a_nul_character_in_a_query_parameter_is_refused(staff_client, param):
    error = assert_error(staff_client.get("/api/v1/jobs/", {param: "a\x00b"}), 400, code="invalid", field=param)
    assert "NUL" in error["message"]


def test_a_nul_character_in_an_admin_filter_is_refused(admin_client):
    response = admin_client.get("/admin/jobs/job/", {"q": "a\x00b"})
    assert_error(response, 400, code="invalid", field="q")


def test_owner_filter_is_for_staff(user, other_user, user_client, staff_viewer, staff_client):
    mine, theirs = JobFactory(owner=user), JobFactory(owner=other_user)
    assert set(ids(staff_client.get("/api/v1/jobs/", {"owner": other_user.username}))) == {str(theirs.id)}
    assert set(ids(staff_client.get("/api/v1/jobs/", {"owner": str(user.id)}))) == {str(mine.id)}
    # A plain user's list stays their own, whatever owner they ask for.
    assert ids(user_client.get("/api/v1/jobs/", {"owner": other_user.username})) == []
    assert ids(user_client.get("/api/v1/jobs/", {"owner": str(user.id)})) == [str(mine.id)]


@pytest.mark.parametrize("owner", ["²", "٣", "99999999999999999999999", "nobody"])
def test_owner_filter_with_odd_values_finds_nothing(staff_client, user, owner):
    JobFactory(owner=user)
    response = staff_client.get("/api/v1/jobs/", {"owner": owner})
    assert response.status_code == 200, response.content
    assert ids(response) == []


def test_a_list_naming_only_paging_parameters_builds_no_filterset(user, user_client, monkeypatch):
    """The filter backend skips django-filter's FilterSet (a fifth of a list page's CPU) when the
    request names nothing but the paginator's parameters; with any other parameter it runs."""
    from jobs.filters import JobFilter

    built = []
    original = JobFilter.__init__

    def counting(self, *args, **kwargs):
        built.append(kwargs.get("data"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(JobFilter, "__init__", counting)
    JobFactory.create_batch(3, owner=user)
    first = user_client.get("/api/v1/jobs/", {"page_size": 2})
    assert first.status_code == 200 and len(ids(first)) == 2
    assert user_client.get(first.json()["next"]).status_code == 200
    assert user_client.get("/api/v1/jobs/").status_code == 200
    assert built == []
    assert ids(user_client.get("/api/v1/jobs/", {"status": "failed"})) == []
    assert user_client.get("/api/v1/jobs/", {"no_such_filter": "x"}).status_code == 200
    assert len(built) == 2


def test_list_ordering(user, user_client):
    now = timezone.now()
    jobs = [JobFactory(owner=user, created_at=now - timedelta(minutes=m)) for m in (3, 1, 2)]
    oldest_first = [str(job.id) for job in sorted(jobs, key=lambda job: job.created_at)]
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "created_at"})) == oldest_first
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "-created_at"})) == oldest_first[::-1]
    # Orderings a cursor cannot page through are ignored (the default order is kept).
    assert ids(user_client.get("/api/v1/jobs/", {"ordering": "status"})) == oldest_first[::-1]


def walk(client, url: str) -> tuple[list[str], list[int]]:
    """Follow the next links from ``url``: every id seen, and each page's size."""
    seen, sizes = [], []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        seen += ids(response)
        sizes.append(len(response.json()["results"]))
        url = response.json()["next"]
        assert len(sizes) < 100, "the next links never end"
    return seen, sizes


def test_cursor_pages_follow_next_links(user, user_client):
    now = timezone.now()
    jobs = [JobFactory(owner=user, created_at=now - timedelta(seconds=n)) for n in range(23)]
    seen, sizes = walk(user_client, "/api/v1/jobs/?page_size=10")
    assert seen == [str(job.id) for job in jobs]  # newest first, none twice, none missing
    assert sizes == [10, 10, 3]

    page = user_client.get("/api/v1/jobs/", {"page_size": 10}).json()
    back = user_client.get(user_client.get(page["next"]).json()["previous"]).json()
    assert [job["id"] for job in back["results"]] == seen[:10]


@pytest.mark.parametrize(
    "position",
    ["0001-01-01T00:00:00+01:00", "not a time", "2020-01-01\x00"],
)
def test_a_forged_cursor_is_a_400_naming_the_cursor(user, user_client, position):
    JobFactory(owner=user)
    cursor = base64.b64encode(urlencode({"p": position}).encode()).decode()
    error = assert_error(user_client.get("/api/v1/jobs/", {"cursor": cursor}), 400, code="invalid", field="cursor")
    assert "cursor" in error["message"]


@pytest.mark.parametrize("cursor", ["garbage", "bz1hYmM="])  # o=abc
def test_a_malformed_cursor_is_a_400(user_client, cursor):
    assert_error(user_client.get("/api/v1/jobs/", {"cursor": cursor}), 400, code="invalid", field="cursor")


def test_a_cursor_position_with_an_offset_postgresql_refuses_compares_in_utc(user, user_client):
    older = JobFactory(owner=user, created_at=datetime.fromisoformat("2020-01-01T16:04:00+00:00"))
    JobFactory(owner=user, created_at=datetime.fromisoformat("2020-01-01T16:06:00+00:00"))
    cursor = base64.b64encode(urlencode({"p": "2020-01-01T00:00:00-16:05"}).encode()).decode()
    assert ids(user_client.get("/api/v1/jobs/", {"cursor": cursor})) == [str(older.id)]


def test_cursor_pages_are_stable_for_jobs_created_together(user, user_client):
    """Jobs that share ``created_at`` (a bulk's jobs are a microsecond apart, but two requests may
    land on the same instant): the id breaks the tie, so every row shows once."""
    when = datetime.fromisoformat("2026-01-01T12:00:00+00:00")
    created = Job.objects.bulk_create(JobFactory.build_batch(30, owner=user, created_at=when))
    assert Job.objects.values("created_at").distinct().count() == 1
    seen, sizes = walk(user_client, "/api/v1/jobs/?page_size=7")
    assert sizes == [7, 7, 7, 7, 2]
    assert seen == sorted((str(job.id) for job in created), reverse=True)
    seen, _ = walk(user_client, "/api/v1/jobs/?page_size=7&ordering=created_at")
    assert seen == sorted(str(job.id) for job in created)


def test_page_size_is_capped(user, user_client):
    Job.objects.bulk_create(JobFactory.build_batch(205, owner=user))
    assert len(ids(user_client.get("/api/v1/jobs/", {"page_size": 1000}))) == 200
    assert len(ids(user_client.get("/api/v1/jobs/"))) == 50


def test_list_runs_no_count_query(user, user_client):
    JobFactory.create_batch(3, owner=user)
    with CaptureQueriesContext(connection) as queries:
        response = user_client.get("/api/v1/jobs/", {"page_size": 2, "status": "pending"})
    assert response.status_code == 200
    assert response.json()["next"]
    assert not [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]


def test_status_and_priority_filters_read_no_distinct_rows(user, user_client):
    """A job has one status and one priority: ``SELECT DISTINCT`` (django-filter's default for a
    multiple choice) found no duplicate, but made PostgreSQL sort every matching row before the
    page's 50 (``?status=succeeded`` at 1,000,000 jobs: a sequential scan and a sort of the table,
    bench/README "The index reshape")."""
    done = JobFactory(owner=user, succeeded=True, priority="high")
    failed = JobFactory(owner=user, failed=True, priority="low")
    JobFactory(owner=user)
    with CaptureQueriesContext(connection) as queries:
        response = user_client.get("/api/v1/jobs/", {"status": ["succeeded", "failed"], "priority": ["high", "low"]})
    assert sorted(ids(response)) == sorted([str(done.id), str(failed.id)])
    listed = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    assert listed and not [sql for sql in listed if "DISTINCT" in sql.upper()], listed


def count_queries(client, url, *, as_user=None) -> int:
    if as_user is not None:  # a fresh instance, as each request loads: no permissions cached
        client.force_authenticate(user=type(as_user).objects.get(pk=as_user.pk))
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_listing_10_or_100_jobs_costs_the_same_queries(user, user_client, staff_viewer, staff_client):
    Job.objects.bulk_create(JobFactory.build_batch(100, owner=user, cancelled_by=staff_viewer))
    small = count_queries(user_client, "/api/v1/jobs/?page_size=10")
    large = count_queries(user_client, "/api/v1/jobs/?page_size=100")
    assert small == large == 1  # one SELECT with owner and cancelled_by joined
    # Staff: and whether they may see every job (their permissions, read once per request).
    staff = [count_queries(staff_client, f"/api/v1/jobs/?page_size={size}", as_user=staff_viewer) for size in (10, 100)]
    assert staff[0] == staff[1] <= 3


@pytest.mark.parametrize(
    "params",
    [
        {"created_at__gte": "2020-01-01T00:00:00-16:05"},
        {"created_at__lt": "2020-01-01 00:00:00+23:59"},
        {"created_at__gte": "0001-01-01T00:00:00+01:00"},
        {"created_at__day": "99999999999999999999"},
        {"created_at__year": "-1"},
        {"created_at__gte": "not a time"},
    ],
)
@pytest.mark.parametrize("page", ["/admin/jobs/job/", "/admin/jobs/jobevent/"])
def test_admin_filters_with_extreme_or_malformed_times_never_fail(admin_client, params, page):
    """An operator's hand-edited URL answers a page (Django's "?e=1" for a lookup it cannot read), never a 500."""
    JobFactory()
    if page.endswith("jobevent/"):
        params = {key.replace("created_at", "at"): value for key, value in params.items()}
    response = admin_client.get(page, params, follow=True)
    assert response.status_code == 200, response.content[:500]


def test_a_list_page_reads_only_the_columns_it_shows(user, user_client):
    """A page's rows are dicts of ``JobSerializer.LIST_COLUMNS`` (no Job built per row): columns it does
    not show stay in the database, and args, kwargs and result come only through their inline checks."""
    JobFactory(owner=user, error_type="ValueError", result={"ok": True})
    with CaptureQueriesContext(connection) as queries:
        response = user_client.get("/api/v1/jobs/")
    assert response.status_code == 200 and len(response.json()["results"]) == 1
    (sql,) = [q["sql"] for q in queries.captured_queries if '"jobs_job"' in q["sql"]]
    shown = {column.removesuffix("_id") for column in JobSerializer.LIST_COLUMNS}
    hidden = [field.column for field in Job._meta.concrete_fields if field.name not in shown]
    assert "error_type" in hidden and "idempotency_key" in hidden
    assert [column for column in hidden if f'"jobs_job"."{column}" AS' in sql] == [], sql
    branches = 1 + sql.count("UNION ALL")  # the jobs not running and the running ones (migration 0026)
    for column in ("args", "kwargs", "result"):  # IS NULL, octet_length and jsonb_build_array: never whole
        assert sql.count(f'"jobs_job"."{column}"') == 3 * branches and f'AS "{column}_inline"' in sql, sql


def test_a_page_with_a_bearer_token_is_two_statements(user, login, password, bearer_client):
    """The token's user (one statement, ``accounts.selectors.user_by_id``) and the page: no COUNT, no
    permission or quota read, nothing per row."""
    Job.objects.bulk_create(JobFactory.build_batch(60, owner=user))
    client = bearer_client(login(user.username, password)["access"])
    for url in ("/api/v1/jobs/", "/api/v1/jobs/?page_size=10"):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200 and response.json()["next"]
        assert len(queries) == 2, [q["sql"][:120] for q in queries.captured_queries]
