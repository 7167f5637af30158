#!/usr/bin/env python
"""The plans of the queries that read jobs_job's indexes, at 1,000,000 jobs, before and after a migration.

Migration 0020 (issue 20, Performance II) dropped three of the list's indexes and merged the three
partial indexes of active jobs into one; 0026 takes running jobs out of the list orders' indexes and
the pending jobs' one (``--before 0025_narrower_active_index``, the default; ``--before
0019_unique_jobs`` for 0020's reshape). This script shows, in one run, what each query that reads
them (the API's list filters, the admin's list, filters and arrivals, the sweeps, the quotas, the
gauges, the streams, retention) does at 1,000,000 jobs before and at the latest migration: the scans
of its plan (index or sequential), the buffers it touched and its execution time (``EXPLAIN
(ANALYZE, BUFFERS)``, the best of three), and the size of each index. Also the latest without
``job_created`` (dropped in a transaction that is rolled back), which 0020's brief proposed.

The statements are the code's own: each query is captured while the real function, API request or
admin page runs (in a transaction rolled back afterwards), then explained. The table: 1,000,000
jobs (``list_scale.insert_jobs``), of three users: alice 75 %, bob 24.9 %, carol 0.1 %; the newest
2,000 pending and the next 100 running (fresh heartbeats), then 1 % failed (dead: no retries left),
0.1 % revoked, 0.01 % expired, the rest succeeded; 2 % of another task, 1 % with a task_type,
10 % on low_priority. Then ``VACUUM ANALYZE``.

Own database taskhub_bench_index_plans, own Redis db 4 (nothing is sent: the sweeps find nothing due).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common
from bench.list_scale import insert_jobs, vacuum

ENV = common.configure(database="taskhub_bench_index_plans", redis_db=4)

OTHER_TASK = "jobs.tasks.common_tasks.flaky_task"
SCAN = re.compile(
    r"Bitmap Index Scan on (\w+)|(Parallel Seq Scan|Seq Scan|Index Only Scan|Index Scan)( Backward)?"
    r"(?: using (\w+))? on (\w+)|(Incremental Sort|Sort)\b"
)


def load(alice: int, bob: int, carol: int, total: int) -> None:
    owner = f"CASE WHEN mod(n, 1000) = 7 THEN {carol} WHEN mod(n, 4) = 0 THEN {bob} ELSE {alice} END"
    status = (
        "CASE WHEN n < 2000 THEN 'pending' WHEN n < 2100 THEN 'running' WHEN mod(n, 100) = 1 THEN 'failed' "
        "WHEN mod(n, 1000) = 2 THEN 'revoked' WHEN mod(n, 10000) = 3 THEN 'expired' ELSE 'succeeded' END"
    )
    at = "%(start)s::timestamptz - n * interval '1 millisecond'"
    insert_jobs(
        alice,
        0,
        total,
        overrides={
            "owner_id": owner,
            "status": status,
            "celery_task_name": f"CASE WHEN mod(n, 50) = 5 THEN '{OTHER_TASK}' "
            "ELSE 'jobs.tasks.common_tasks.long_running_task' END",
            "task_type": "CASE WHEN mod(n, 100) = 7 THEN 'report' ELSE '' END",
            "queue": "CASE WHEN mod(n, 10) = 9 THEN 'low_priority' ELSE 'default' END",
            "progress": "CASE WHEN n < 2100 THEN 0 ELSE 100 END",
            "result": """CASE WHEN n < 2100 THEN NULL ELSE '{"elapsed": 0.001}'::jsonb END""",
            "started_at": f"CASE WHEN n < 2000 THEN NULL ELSE {at} + interval '10 ms' END",
            "finished_at": f"CASE WHEN n < 2100 THEN NULL ELSE {at} + interval '20 ms' END",
            "heartbeat_at": f"CASE WHEN n < 2000 THEN NULL WHEN n < 2100 THEN now() ELSE {at} + interval '20 ms' END",
            "error_type": "CASE WHEN mod(n, 100) = 1 AND n >= 2100 THEN 'ValueError' ELSE '' END",
        },
    )


def captured(run: Callable[[], object]) -> list[str]:
    """The SELECTs on jobs_job that ``run`` sends, in a transaction rolled back afterwards."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        run()
        transaction.set_rollback(True)
    return [
        query["sql"]
        for query in queries.captured_queries
        if query["sql"].lstrip(" (").upper().startswith("SELECT") and '"jobs_job"' in query["sql"]
    ]


SHOW: list[str] = []  # --show: print the statements and plans of the queries whose name contains one of these


def explain(sql: str, rounds: int = 3, name: str = "") -> tuple[str, int, float]:
    """Its scans (index names, or Seq Scan), shared buffers touched and the best execution ms."""
    from django.db import connection

    best, buffers, scans = float("inf"), 0, ""
    with connection.cursor() as cursor:
        for _ in range(rounds):
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT TEXT) {sql}")
            lines = [row[0] for row in cursor.fetchall()]
            ms = float(next(line for line in lines if line.startswith("Execution Time")).split()[2])
            if ms < best:
                best = ms
                found = []
                for match in SCAN.finditer("\n".join(lines)):
                    bitmap_index, kind, backward, index, table, sort = match.groups()
                    if sort:
                        found.append(sort)
                    elif bitmap_index:
                        found.append(f"Bitmap {bitmap_index}")
                    elif table == "jobs_job" or index:
                        found.append(f"{kind.replace(' Scan', '')}{backward or ''} {index or table}".strip())
                scans = ", ".join(dict.fromkeys(found))
                top = next((line for line in lines if "Buffers:" in line), "")
                plan = lines
                buffers = sum(int(value) for value in re.findall(r"(?:hit|read)=(\d+)", top))
    if any(part in name for part in SHOW):
        print(f"\n-- {name}\n{sql}\n" + "\n".join(plan))
    return scans, buffers, best


def queries(users: dict) -> dict[str, Callable[[], object]]:
    """Name -> what runs the query (a request, a page, a service)."""
    from django.conf import settings
    from django.test import Client, override_settings
    from rest_framework.test import APIClient

    from accounts.models import User
    from jobs.models import Job
    from jobs.observability import collector
    from jobs.queues.selectors import queue_list
    from jobs.selectors import dead_job_counts
    from jobs.services import recovery, retention
    from jobs.services.creation import job_create
    from jobs.services.execution import job_start
    from jobs.services.promotion import job_promote_waiting

    def api(user, query: str = ""):
        def run():
            client = APIClient()
            client.force_authenticate(users[user])
            response = client.get(f"/api/v1/jobs/?page_size=50{query}")
            assert response.status_code == 200, response.content[:300]

        return run

    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }

    def admin(query: str = ""):
        def run():
            client = Client()
            client.force_login(users["staff"])
            with override_settings(STORAGES=plain_static):  # no collectstatic manifest here
                response = client.get(f"/admin/jobs/job/{query}")
            assert response.status_code == 200, response.content[:300]

        return run

    def retention_page(status: str):
        from datetime import timedelta

        from django.utils import timezone

        cutoff = timezone.now() - timedelta(days=7)
        return lambda: list(
            retention._expired_jobs(status, cutoff).order_by("created_at", "id").values_list("created_at", "id")[:500]
        )

    def unhurried(run):  # nothing is due: the sweeps' statements run, and send nothing
        def wrapped():
            with override_settings(JOB_LOST_AFTER=10 * 365 * 86400.0, JOB_PRIORITY_MAX_WAIT=10 * 365 * 86400.0):
                run()

        return wrapped

    alice = users["alice"].id

    def create_with_quotas():  # the quota's counts (per minute, active) of a user with 75 % of the jobs
        User.objects.filter(id=alice).update(max_active_jobs=10**6, max_jobs_per_minute=10**6)
        job_create(owner=User.objects.get(id=alice), celery_task_name="long_running_task", kwargs={"seconds": 0})

    newest = Job.objects.order_by("-created_at").values_list("created_at", flat=True)[0]

    def arrivals():  # the admin list's "N new jobs" count, since the newest job
        client = Client()
        client.force_login(users["staff"])
        response = client.get("/admin/jobs/job/arrivals/", {"since": newest.isoformat()})
        assert response.status_code == 200, response.content[:300]

    def stream_list_read():  # a list stream's read of alice's active jobs and those created in its last minute
        from datetime import timedelta

        from jobs.streams.feeds import ListScope, _list_read

        mine = Job.objects.filter(owner_id=alice)
        scope = ListScope(candidates=mine, statuses=frozenset(), owner_id=alice, filtered=False)
        _list_read(scope, [], newest - timedelta(minutes=1))

    def jobs_list_command():
        from django.core.management import call_command

        call_command("jobs", "list", "--limit", "20", "--json", stdout=open("/dev/null", "w"))

    def start_over_share():  # a start over the owner's share: the count of their running jobs, then their backlog
        User.objects.filter(id=alice).update(max_running_jobs=1)
        pending = Job.objects.filter(owner_id=alice, status="pending").values_list("id", flat=True).first()
        job_start(job_id=pending, worker="bench@host:1")

    return {
        "API alice: first page": api("alice"),
        "API alice: ?status=failed": api("alice", "&status=failed"),
        "API alice: ?status=expired": api("alice", "&status=expired"),
        "API alice: ?status=succeeded": api("alice", "&status=succeeded"),
        "API alice: ?status=pending": api("alice", "&status=pending"),
        "API alice: ?status=running": api("alice", "&status=running"),
        "API alice: ?dead=true": api("alice", "&dead=true"),
        "API alice: ?task= (2 %)": api("alice", f"&task={OTHER_TASK}"),
        "API alice: ?task_type= (1 %)": api("alice", "&task_type=report"),
        "API alice: ?task_type= (none)": api("alice", "&task_type=nothing"),
        "API alice: ?kwarg= (none)": api("alice", "&kwarg=user_id:42"),
        "API staff: ?kwarg= (none)": api("staff", "&kwarg=user_id:42"),
        "API carol (0.1 %): first page": api("carol"),
        "API carol: ?status=failed": api("carol", "&status=failed"),
        "API staff: first page": api("staff"),
        "API staff: ?status=failed": api("staff", "&status=failed"),
        "API staff: ?status=running": api("staff", "&status=running"),
        "API staff: ?task= (2 %)": api("staff", f"&task={OTHER_TASK}"),
        "API staff: ?task_type= (1 %)": api("staff", "&task_type=report"),
        "admin: job list": admin(),
        "admin: ?status__exact=failed": admin("?status__exact=failed"),
        "admin: ?status__exact=running": admin("?status__exact=running"),
        "admin: arrivals count": arrivals,
        "stream: a list's read": stream_list_read,
        "command: jobs list": jobs_list_command,
        "dead jobs page (dead_job_counts)": dead_job_counts,
        "create: a user's quotas": create_with_quotas,
        "start: over the owner's share": start_over_share,
        "sweep: job_recover_stale": recovery.job_recover_stale,
        "sweep: job_expire_due": recovery.job_expire_due,
        "sweep: job_dispatch_due": unhurried(recovery.job_dispatch_due),
        "sweep: job_promote_waiting": unhurried(job_promote_waiting),
        "gauges: active_counts": collector.active_counts,
        "gauges: oldest_pending_ages": collector.oldest_pending_ages,
        "gauges: running_per_worker": collector.running_per_worker,
        "queues: queue_list": queue_list,
        "retention: succeeded, 500 oldest": retention_page("succeeded"),
        "retention: failed, 500 oldest": retention_page("failed"),
    }


def measure(runs: dict[str, Callable[[], object]]) -> dict[str, tuple[str, int, float]]:
    results = {}
    for name, run in runs.items():
        statements = captured(run)
        for number, statement in enumerate(statements, 1):
            key = name if len(statements) == 1 else f"{name} #{number}"
            results[key] = explain(statement, name=key)
    return results


def index_sizes() -> dict[str, int]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index "
            "WHERE indrelid = 'jobs_job'::regclass ORDER BY 1"
        )
        return dict(cursor.fetchall())


def main() -> int:
    def arguments(parser):
        parser.add_argument("--show", action="append", default=[])
        parser.add_argument("--before", default="0025_narrower_active_index", help="the jobs migration to compare")

    args = common.parse_args(__doc__, arguments)
    SHOW.extend(args.show)
    first, last = args.before[:4], "head"
    total = 100_000 if args.quick else 1_000_000
    with common.bench_environment(ENV):
        from django.contrib.auth.models import Permission
        from django.core.management import call_command
        from django.db import connection, transaction

        call_command("migrate", "jobs", args.before, verbosity=0)
        users = {name: common.make_user(name) for name in ("alice", "bob", "carol")}
        staff = common.make_user("staff", is_staff=True)
        staff.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="change_job"))
        users["staff"] = staff
        started = time.perf_counter()
        load(users["alice"].id, users["bob"].id, users["carol"].id, total)
        vacuum()
        print(f"# {total:,} jobs written in {time.perf_counter() - started:.1f}s; load average {common.load_average()}")
        runs = queries(users)
        before, sizes_before = measure(runs), index_sizes()
        started = time.perf_counter()
        call_command("migrate", "jobs", verbosity=0)
        vacuum()
        print(f"# migrated to the latest in {time.perf_counter() - started:.1f}s; load average {common.load_average()}")
        after, sizes_after = measure(runs), index_sizes()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX job_created")
            without = measure(runs)
            transaction.set_rollback(True)
    names = list(dict.fromkeys([*before, *after]))
    empty = ("-", 0, 0.0)
    common.print_table(
        f"plans at {total:,} jobs (EXPLAIN (ANALYZE, BUFFERS), best of 3): scans of jobs_job, shared buffers, ms",
        ["query", f"{first} scans", "buffers", "ms", f"{last} scans", "buffers", "ms"],
        [[name, *before.get(name, empty), *after.get(name, empty)] for name in names],
    )
    common.print_table(
        f"{last} without job_created (dropped in a transaction rolled back): the queries whose plan changes",
        ["query", "scans", "buffers", "ms"],
        [[name, *without[name]] for name in names if name in without and without[name][0] != after.get(name, empty)[0]],
    )
    common.print_table(
        "jobs_job's indexes (pg_relation_size, MB)",
        ["index", first, last],
        [
            [name, sizes_before.get(name, 0) / 2**20, sizes_after.get(name, 0) / 2**20]
            for name in sorted({*sizes_before, *sizes_after})
        ],
    )
    seq = [name for name, (scans, _, _) in after.items() if "Seq" in scans]
    seq_before = sum("Seq" in scans for scans, _, _ in before.values())
    listed = f" ({'; '.join(seq)})" if seq else ""
    mb_before, mb_after = sum(sizes_before.values()) / 2**20, sum(sizes_after.values()) / 2**20
    print(
        f"\nratios: sequential scans of jobs_job at {total:,} jobs: {first} {seq_before}, {last} {len(seq)}{listed}; "
        f"jobs_job's indexes {mb_before:.0f} -> {mb_after:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
