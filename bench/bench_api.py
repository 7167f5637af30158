#!/usr/bin/env python
"""REST API in-process: creating jobs one by one vs in bulk, and cursor pages vs OFFSET + COUNT(*).

(a) POST /api/v1/jobs/ one job per request vs POST /api/v1/jobs/bulk/ with 500 jobs per
    request: jobs per second each. The after-commit publish to Redis is included (it is part
    of the real cost of a create); no worker consumes the messages.
(b) On a table of ~100k jobs of one (non-staff) owner, inserted with bulk_create: the cursor
    page of GET /api/v1/jobs/?page_size=50 (first page, 20 cursors deep, half the table deep)
    vs the same viewset with Django's Paginator (PageNumberPagination: COUNT(*) + OFFSET) at
    the same depth, through the same stack (APIClient, force_authenticate). Also the bare
    queries without the HTTP stack and serializer, the queries per request, their SQL time and
    the job rows they read (EXPLAIN ANALYZE), and the size of a page.
(b') The same for the jobs of part (a), which share their created_at 500 at a time.

Own database taskhub_bench_api, own Redis db 4. DRF's user throttle (1200/min) is raised for
the run so that it never answers 429; its cache look-ups are still paid.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_api", redis_db=4)

JOBS_URL = "/api/v1/jobs/"
PAGED_URL = "/bench/paged-jobs/"
PAGE_SIZE = 50
BULK_BATCH = 500
JOB_BODY = {"name": "bench", "task_type": "bench", "celery_task_name": "long_running_task", "args": [0]}


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"single": 150, "bulk": 2_000, "table": 20_000, "repeats": 8}
    return {"single": 1_000, "bulk": 10_000, "table": 100_000, "repeats": 25}


def query_kinds(captured) -> str:
    kinds = Counter(query["sql"].split()[0].upper() for query in captured)
    return " ".join(f"{kind}:{count}" for kind, count in sorted(kinds.items()))


def captured_queries(function) -> list[dict]:
    """The queries one call makes. Copied at once: CaptureQueriesContext reads Django's query log
    lazily, and the next request through the test client empties that log."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as context:
        function()
    return list(context.captured_queries)


def client_for(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=user)
    return client


def bench_create(user, n_single: int, n_bulk: int) -> dict:
    from jobs.models import Job

    client = client_for(user)

    def post_single():
        response = client.post(JOBS_URL, JOB_BODY, format="json")
        if response.status_code != 201:
            raise SystemExit(f"POST {JOBS_URL} answered {response.status_code}: {response.content[:500]!r}")

    bulk_body = {"jobs": [JOB_BODY] * BULK_BATCH}

    def post_bulk():
        response = client.post(f"{JOBS_URL}bulk/", bulk_body, format="json")
        if response.status_code != 201:
            raise SystemExit(f"POST {JOBS_URL}bulk/ answered {response.status_code}: {response.content[:500]!r}")

    for _ in range(5):
        post_single()
    post_bulk()
    single_queries, bulk_queries = captured_queries(post_single), captured_queries(post_bulk)

    single_times = []
    for _ in range(n_single):
        t0 = time.perf_counter()
        post_single()
        single_times.append(time.perf_counter() - t0)
    single_s = sum(single_times)

    batches = max(1, n_bulk // BULK_BATCH)
    batch_times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        post_bulk()
        batch_times.append(time.perf_counter() - t0)
    bulk_s = sum(batch_times)

    unsent = Job.objects.filter(owner=user, dispatched_at__isnull=True).count()
    if unsent:
        raise SystemExit(f"{unsent} jobs were not sent to the broker: is Redis at {ENV.broker_url} up?")
    single_rate, bulk_rate = n_single / single_s, batches * BULK_BATCH / bulk_s
    common.print_table(
        f"(a) creating jobs through the API (long_running_task, publish to Redis included; "
        f"{Job.objects.count():,} jobs in the table at the end)",
        ["request", "jobs", "requests", "ms/request (median)", "jobs/s", "queries/request"],
        [
            [
                "POST /api/v1/jobs/ (one job)",
                n_single,
                n_single,
                common.median_ms(single_times),
                single_rate,
                f"{len(single_queries)} ({query_kinds(single_queries)})",
            ],
            [
                f"POST /api/v1/jobs/bulk/ ({BULK_BATCH} jobs)",
                batches * BULK_BATCH,
                batches,
                common.median_ms(batch_times),
                bulk_rate,
                f"{len(bulk_queries)} ({query_kinds(bulk_queries)})",
            ],
        ],
    )
    publish = bench_publish(BULK_BATCH)
    bulk_ms = common.median_ms(batch_times)
    common.print_table(
        f"(a') publishing alone: {BULK_BATCH} messages with apply_async as job_dispatch does (one per job)",
        ["task_send_sent_event", "ms per message", f"ms per {BULK_BATCH}", "share of a bulk request"],
        [
            [
                f"{on} {'(the setting)' if on == publish['setting'] else ''}",
                ms,
                ms * BULK_BATCH,
                f"{ms * BULK_BATCH / bulk_ms:.0%}",
            ]
            for on, ms in ((True, publish[True]), (False, publish[False]))
        ],
    )
    return {"single": single_rate, "bulk": bulk_rate}


def bench_publish(count: int) -> dict:
    """Milliseconds per message published the way job_dispatch does, with Celery's task-sent event
    on and off (nothing in taskhub consumes those events)."""
    import uuid

    from jobs.catalog import catalog
    from taskhub.celery import app

    entry = catalog.get(JOB_BODY["celery_task_name"])

    def publish(n: int) -> None:
        for _ in range(n):
            entry.celery_task.apply_async(
                args=[0],
                task_id=str(uuid.uuid4()),
                queue=entry.queue,
                countdown=None,
                soft_time_limit=entry.soft_time_limit,
                time_limit=entry.time_limit + 60,
                retry=False,
            )

    setting = bool(app.conf.task_send_sent_event)
    timings = {}
    try:
        for sent_event in (True, False, True, False):  # twice each, interleaved; the better of two
            app.conf.task_send_sent_event = sent_event
            publish(20)
            started = time.perf_counter()
            publish(count)
            ms = (time.perf_counter() - started) / count * 1000
            timings[sent_event] = min(ms, timings.get(sent_event, ms))
    finally:
        app.conf.task_send_sent_event = setting
    return {**timings, "setting": setting}


def fill_table(user, count: int) -> float:
    """``count`` finished jobs of ``user``, one second apart (distinct created_at), via bulk_create."""
    from django.db import connection
    from django.utils import timezone

    from jobs.models import Job, JobStatus

    started = time.perf_counter()
    now = timezone.now().replace(microsecond=0) - timedelta(days=1)
    statuses = [JobStatus.SUCCEEDED] * 8 + [JobStatus.FAILED, JobStatus.REVOKED]
    chunk = 5_000
    for first in range(0, count, chunk):
        jobs = []
        for index in range(first, min(count, first + chunk)):
            created = now - timedelta(seconds=index)
            status = statuses[index % len(statuses)]
            jobs.append(
                Job(
                    owner=user,
                    name=f"report {index}",
                    task_type="report",
                    celery_task_name="jobs.tasks.common_tasks.process_data",
                    args=[],
                    kwargs={"csv_text": "a,b\n1,2\n"},
                    priority="normal",
                    queue="default",
                    status=status,
                    progress=100 if status == JobStatus.SUCCEEDED else 40,
                    progress_meta={"message": "done" if status == JobStatus.SUCCEEDED else "step 2/5"},
                    result={"records": 1, "fields": {"a": {"sum": 1.0}}} if status == JobStatus.SUCCEEDED else None,
                    error="" if status == JobStatus.SUCCEEDED else "ValueError: bad row",
                    created_at=created,
                    dispatched_at=created,
                    started_at=created + timedelta(milliseconds=20),
                    finished_at=created + timedelta(milliseconds=900),
                    heartbeat_at=created + timedelta(milliseconds=900),
                    worker="celery@bench:1234",
                )
            )
        Job.objects.bulk_create(jobs, batch_size=1_000)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE jobs_job")
    return time.perf_counter() - started


class Lister:
    """GET pages as one user through the full stack; remembers each URL's body size."""

    def __init__(self, user):
        self.client = client_for(user)
        self.body_bytes: dict[str, int] = {}

    def get(self, url: str) -> dict:
        response = self.client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"GET {url} answered {response.status_code}: {response.content[:500]!r}")
        self.body_bytes[url] = len(response.content)
        return response.json()

    def walk(self, url: str, pages: int) -> str:
        """The URL ``pages`` `next` links after ``url``."""
        for _ in range(pages):
            url = self.get(url)["next"]
        return url


def explain(captured: list[dict]) -> tuple[float, int]:
    """SQL execution ms (EXPLAIN ANALYZE) of the captured SELECTs, and the jobs_job rows their scans
    read (rows returned plus rows removed by a filter)."""
    from django.db import connection

    total_ms, rows = 0.0, 0
    with connection.cursor() as cursor:
        for query in captured:
            if not query["sql"].lstrip().upper().startswith("SELECT"):
                continue
            cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + query["sql"])
            (plan,) = cursor.fetchone()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            total_ms += plan[0]["Execution Time"]
            rows += _rows_read(plan[0]["Plan"])
    return total_ms, rows


def _rows_read(node: dict) -> int:
    own = 0
    if node.get("Relation Name") == "jobs_job":
        per_loop = node.get("Actual Rows", 0) + node.get("Rows Removed by Filter", 0)
        own = round(per_loop * node.get("Actual Loops", 1))
    return own + sum(_rows_read(child) for child in node.get("Plans", []))


def measure(lister: Lister, cases: dict[str, tuple], repeats: int) -> tuple[dict, list[list]]:
    """Time each case round-robin (so a burst of load elsewhere hits all alike); table rows too.

    ``cases`` maps a label to ``(function, url_or_None)``.
    """
    queries = {label: captured_queries(function) for label, (function, _) in cases.items()}
    timings = common.interleaved({label: function for label, (function, _) in cases.items()}, repeats)
    results, rows = {}, []
    for label, (_, url) in cases.items():
        sql_ms, rows_read = explain(queries[label])
        results[label] = common.median_ms(timings[label])
        rows.append(
            [
                label,
                results[label],
                common.p90_ms(timings[label]),
                f"{len(queries[label])} ({query_kinds(queries[label])})",
                sql_ms,
                rows_read,
                f"{lister.body_bytes[url] / 1024:.1f}" if url else "-",
            ]
        )
    return results, rows


LIST_HEADERS = ["page", "ms (median)", "ms (p90)", "queries", "SQL ms (EXPLAIN)", "job rows read", "KiB/page"]


def bench_list(user, table_size: int, repeats: int) -> dict:
    from django.core.paginator import Paginator
    from rest_framework.pagination import Cursor

    from jobs import selectors
    from jobs.views import JobCursorPagination

    fill_s = fill_table(user, table_size)
    print(
        f"\n# (b) inserted {table_size:,} jobs of one owner with bulk_create (chunks of 5,000) "
        f"+ VACUUM ANALYZE in {fill_s:.1f}s ({table_size / fill_s:,.0f} rows/s)"
    )
    lister = Lister(user)
    first_url = f"{JOBS_URL}?page_size={PAGE_SIZE}"
    walk_started = time.perf_counter()
    deep_url = lister.walk(first_url, 20)
    walk_ms = (time.perf_counter() - walk_started) / 20 * 1000

    # Half the table deep: a cursor whose position is the created_at of the row just before;
    # built with the paginator's own encoder (a client would get there by following `next`).
    queryset = selectors.job_list(user=user).order_by("-created_at", "-id")
    half = table_size // 2
    paginator_for_urls = JobCursorPagination()
    paginator_for_urls.base_url = f"http://testserver{first_url}"
    half_url = paginator_for_urls.encode_cursor(
        Cursor(offset=0, reverse=False, position=str(queryset[half - 1].created_at))
    )
    depths = [
        ("first page", 1, first_url),
        ("20 pages deep (page 21)", 21, deep_url),
        (f"half the table deep (page {half // PAGE_SIZE + 1})", half // PAGE_SIZE + 1, half_url),
    ]

    results, rows = {}, []
    for label, page, cursor_url in depths:
        offset = (page - 1) * PAGE_SIZE
        expected = [str(job_id) for job_id in queryset.values_list("id", flat=True)[offset : offset + PAGE_SIZE]]
        paged_url = f"{PAGED_URL}?page_size={PAGE_SIZE}&page={page}"
        for url in (cursor_url, paged_url):
            if [row["id"] for row in lister.get(url)["results"]] != expected:
                raise SystemExit(f"{label}: {url} does not hold rows {offset}-{offset + PAGE_SIZE - 1}")
        # The bare cursor query filters on the created_at of the previous page's last row.
        position = None if page == 1 else queryset[offset - 1].created_at

        def bare_cursor(position=position):
            page_qs = queryset if position is None else queryset.filter(created_at__lt=position)
            return list(page_qs[: PAGE_SIZE + 1])

        def bare_paginator(page=page):
            paginator = Paginator(queryset, PAGE_SIZE)
            return paginator.count, list(paginator.page(page).object_list)

        measured, table_rows = measure(
            lister,
            {
                f"{label}: GET {JOBS_URL} (cursor)": (lambda url=cursor_url: lister.get(url), cursor_url),
                f"{label}: GET {PAGED_URL} (Django Paginator)": (lambda url=paged_url: lister.get(url), paged_url),
                f"{label}: bare ORM, cursor query": (bare_cursor, None),
                f"{label}: bare ORM, Paginator count + page": (bare_paginator, None),
            },
            repeats,
        )
        results[label] = dict(
            zip(("cursor", "paginator", "bare cursor", "bare paginator"), measured.values(), strict=True)
        )
        rows.extend(table_rows)
    common.print_table(
        f"(b) listing {table_size:,} jobs of one owner (distinct created_at), page_size={PAGE_SIZE}, {repeats} rounds "
        f"(walking 20 `next` links: {walk_ms:.1f} ms/page)",
        LIST_HEADERS,
        rows,
    )
    return results


def bench_list_bulk_created(user, repeats: int) -> None:
    """The jobs of part (a): most were created 500 at a time, and a bulk create gives its jobs one
    created_at, so the cursor's tie-breaker (id) decides the order inside each group."""
    lister = Lister(user)
    first_url = f"{JOBS_URL}?page_size={PAGE_SIZE}"
    deep_url = lister.walk(first_url, 20)
    cases = {}
    for label, page, cursor_url in (("first page", 1, first_url), ("20 pages deep (page 21)", 21, deep_url)):
        paged_url = f"{PAGED_URL}?page_size={PAGE_SIZE}&page={page}"
        if [r["id"] for r in lister.get(cursor_url)["results"]] != [r["id"] for r in lister.get(paged_url)["results"]]:
            raise SystemExit(f"bulk-created jobs, {label}: the cursor page and the numbered page differ")
        cases[f"{label}: GET {JOBS_URL} (cursor)"] = (lambda url=cursor_url: lister.get(url), cursor_url)
        cases[f"{label}: GET {PAGED_URL} (Django Paginator)"] = (lambda url=paged_url: lister.get(url), paged_url)
    _, rows = measure(lister, cases, repeats)
    common.print_table(
        f"(b') listing the {user.jobs.count():,} jobs of part (a) ({BULK_BATCH} per bulk request share one created_at)",
        LIST_HEADERS,
        rows,
    )


def main() -> int:
    args = common.parse_args(__doc__)
    n = sizes(args.quick)
    with common.bench_environment(ENV):
        from django.test.utils import override_settings
        from rest_framework.throttling import SimpleRateThrottle

        SimpleRateThrottle.THROTTLE_RATES = {**SimpleRateThrottle.THROTTLE_RATES, "user": "100000000/min"}
        with override_settings(ROOT_URLCONF="bench.api_urls"):
            creator = common.make_user("bench-creator")
            lister = common.make_user("bench-lister")
            rates = bench_create(creator, n["single"], n["bulk"])
            listing = bench_list(lister, n["table"], n["repeats"])
            bench_list_bulk_created(creator, n["repeats"])
    first, deep, half = (listing[label] for label in listing)
    print(
        "\nratios: create bulk/single = {bulk} jobs/s; list ms Paginator/cursor (API): first page {f}, "
        "20 deep {d}, half table {h}; bare queries: first {bf}, 20 deep {bd}, half table {bh}".format(
            bulk=common.ratio(rates["bulk"], rates["single"]),
            f=common.ratio(first["paginator"], first["cursor"]),
            d=common.ratio(deep["paginator"], deep["cursor"]),
            h=common.ratio(half["paginator"], half["cursor"]),
            bf=common.ratio(first["bare paginator"], first["bare cursor"]),
            bd=common.ratio(deep["bare paginator"], deep["bare cursor"]),
            bh=common.ratio(half["bare paginator"], half["bare cursor"]),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
