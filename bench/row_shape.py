"""What the shape of the job row costs in WAL: the same job lifecycle written to several shapes.

Performance II asks for fewer index entries per write and names two ways: the columns that change on
every run kept out of every index (so that updates can be HOT), or a small hot state table beside a
cold one with the search, GIN and reporting indexes. Before reshaping the code, this measures the
shapes with the statements alone, in the benchmark's own database (WalMeter: its WAL records only).
Every shape is a copy of today's ``jobs_job`` (``LIKE … INCLUDING ALL``, the same fillfactor: every
column, default, constraint and index the migrations made, so a new column or index is in every
shape at once); the ordinary timeline lines are derived from the row (migration 0022), so a job
writes no line:

* ``today``: the copy as it is. The argument search's GIN indexes leave out running jobs
  (migration 0024): two GIN entries per job, at its insert and its finish; a search finds running
  jobs through ``job_running``. So do the list orders' indexes (``job_owner_created``,
  ``job_created``) and the pending jobs' one (``job_pending``) since migration 0026.
* ``search at every version``: as before 0024, the GIN indexes hold every row version of a job
  with arguments (their condition without ``status``): one entry per version.
* ``running in the lists``: as before 0026, the two list indexes hold every row version and the
  active jobs' index (``job_active``: owner and status, pending and running) replaces
  ``job_pending``: three B-tree entries per job more.
* ``hot/cold``: the cold row (identity, arguments, result; the list's indexes, whole: its status
  never changes, and the search's; none on a column a run changes) beside a narrow state row
  (status, times, worker, progress; its primary key and today's pending, running, finished and
  unsent partial indexes). A start and a finish update the state row; the finish writes the result
  into the cold row as a HOT update.

Jobs are created 500 per statement (the bulk API), then started and finished one statement at a time
(workers), ``-n`` jobs per shape. Prints WAL bytes, records and B-tree index entries per job, and the
bytes by relation. Bytes with and without full-page images: each shape starts after a ``CHECKPOINT``
(each pays the first touch of its pages, as a run after a checkpoint does), but the cluster's other
checkpoints come when other databases' WAL brings them; the bytes without them do not move between runs.
"""

from __future__ import annotations

import re
import sys
import time

from _common import WalMeter, bench_environment, configure, parse_args, print_table

ENV = configure(database="taskhub_bench_row_shape", redis_db=4)
BATCH = 500
SHAPES = ("today", "search at every version", "running in the lists", "hot/cold")
LISTS = ("owner_id, created_at DESC, id DESC", "created_at DESC, id DESC")
GIN_COLUMNS = {"args jsonb_path_ops": "args <> '[]'::jsonb", "kwargs jsonb_path_ops": "kwargs <> '{}'::jsonb"}
# The columns a job's row gets from its create, in a template row (every other column copied from it).
FRESH = {"id": "gen_random_uuid()", "created_at": "now() + g * interval '1 us'", "dispatched_at": "now()"}
STATE_COLUMNS = (
    "status",
    "progress",
    "progress_meta",
    "attempts",
    "worker",
    "dispatched_at",
    "started_at",
    "finished_at",
    "heartbeat_at",
    "cancel_requested_at",
)
# The other columns the state row's indexes name (their keys and conditions).
STATE_INDEXED = (
    "id",
    "owner_id",
    "queue",
    "celery_task_name",
    "created_at",
    "expires_at",
    "concurrency_key",
    "unique_follow_up",
)


def _table(shape: str) -> str:
    return re.sub(r"\W+", "_", shape)


def _indexes(cursor, table: str) -> list[tuple[str, str]]:
    cursor.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s", [table])
    return cursor.fetchall()


def _recondition(cursor, table: str, columns: str, extra: str | None, *, replace: bool = False) -> int:
    """Re-create the copy's indexes on exactly ``columns`` with ``extra`` added to their condition
    (``replace``: instead of it; None: without one)."""
    changed = 0
    for name, definition in _indexes(cursor, table):
        head, _, condition = definition.partition(" WHERE ")
        if not re.search(rf"USING \w+ \({re.escape(columns)}\)", head):
            continue
        cursor.execute(f"DROP INDEX {name}")
        kept = f"({condition}) AND " if condition and not replace else ""
        cursor.execute(head if extra is None else f"{head} WHERE {kept}{extra}")
        changed += 1
    return changed


def _setup(cursor, owner: int) -> tuple[list[str], object]:
    """Make the shapes' tables; return the columns of a job and a template job's id."""
    cursor.execute("SELECT reloptions FROM pg_class WHERE relname = 'jobs_job'")
    options = cursor.fetchone()[0] or []
    storage = f" WITH ({', '.join(options)})" if options else ""
    for shape in SHAPES:
        cursor.execute(f"CREATE TABLE {_table(shape)} (LIKE jobs_job INCLUDING ALL){storage}")
    # Before 0024 (and the cold row, whose status never changes): the GIN indexes without their status term.
    for shape in ("search at every version", "hot/cold"):
        for columns, condition in GIN_COLUMNS.items():
            assert _recondition(cursor, _table(shape), columns, condition, replace=True) == 1
    # Before 0026 (and the cold row): the list orders whole. Before 0026: job_active, not job_pending.
    for shape in ("running in the lists", "hot/cold"):
        for columns in LISTS:
            assert _recondition(cursor, _table(shape), columns, None) == 1
    table = _table("running in the lists")
    [pending] = [name for name, definition in _indexes(cursor, table) if "btree (owner_id) WHERE" in definition]
    cursor.execute(f"DROP INDEX {pending}")
    cursor.execute(f"CREATE INDEX ON {table} (owner_id, status) WHERE status IN ('pending', 'running')")
    # hot/cold: the cold row keeps its primary key, the list's and the search's indexes; the state row
    # the indexes on a column a run changes (status and times), with the columns their keys name.
    cold = _table("hot/cold")
    state = f"{cold}_state"
    moved = [
        name
        for name, definition in _indexes(cursor, cold)
        if re.search(r"status|started_at|finished_at|dispatched_at", definition)
    ]
    cursor.execute(
        "SELECT pg_get_indexdef(indexrelid) FROM pg_index WHERE indexrelid = ANY(%s::regclass[])",
        [moved],
    )
    state_indexes = [row[0] for row in cursor.fetchall()]
    for name in moved:
        cursor.execute(f"DROP INDEX {name}")
    cursor.execute(
        f"CREATE TABLE {state}{storage} AS SELECT {', '.join(STATE_INDEXED + STATE_COLUMNS)} FROM {cold} WITH NO DATA"
    )
    cursor.execute(f"ALTER TABLE {state} ADD PRIMARY KEY (id)")
    for definition in state_indexes:
        cursor.execute(re.sub(r"INDEX (\w+) ON public\.\w+", rf"INDEX \1_s ON {state}", definition))
    # A template job: every column as a create writes it (the model's defaults), copied per new job.
    from jobs.models import Job

    template = Job.objects.create(
        owner_id=owner,
        name="bench",
        task_type="bench",
        celery_task_name="jobs.tasks.common_tasks.long_running_task",
        kwargs={"seconds": 0},
        created_via="bulk",
    )
    cursor.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'jobs_job' ORDER BY ordinal_position"
    )
    return [row[0] for row in cursor.fetchall()], template.id


def _lifecycle(cursor, shape: str, n: int, columns: list[str], template) -> None:
    table = _table(shape)
    values = ", ".join(FRESH.get(column, column) for column in columns)
    state = f"{table}_state"
    for first in range(0, n, BATCH):
        count = min(BATCH, n - first)
        cursor.execute(
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT {values} FROM jobs_job, generate_series(1, %s) g "
            "WHERE jobs_job.id = %s RETURNING id",
            [count, template],
        )
        ids = [row[0] for row in cursor.fetchall()]
        if shape == "hot/cold":
            cursor.execute(
                f"INSERT INTO {state} SELECT {', '.join(STATE_INDEXED + STATE_COLUMNS)} FROM {table} "
                "WHERE id = ANY(%s)",
                [ids],
            )
        target = state if shape == "hot/cold" else table
        for job_id in ids:
            cursor.execute(
                f"UPDATE {target} SET status = 'running', started_at = now(), heartbeat_at = now(), "
                f"worker = 'celery@bench:1', attempts = attempts + 1 WHERE id = %s AND status = 'pending'",
                [job_id],
            )
        for job_id in ids:
            result = "" if shape == "hot/cold" else ", result = 'null'"
            cursor.execute(
                f"UPDATE {target} SET status = 'succeeded', finished_at = now(), heartbeat_at = now(), "
                f"progress = 100{result} WHERE id = %s AND status = 'running'",
                [job_id],
            )
            if shape == "hot/cold":  # the result into the cold row: no indexed column, a HOT update
                cursor.execute(f"UPDATE {table} SET result = 'null' WHERE id = %s", [job_id])


def main() -> int:
    args = parse_args(__doc__, lambda p: p.add_argument("-n", type=int, help="jobs per shape"))
    n = args.n or (1_000 if args.quick else 5_000)
    with bench_environment(ENV):
        from django.db import connection

        from accounts.models import User

        owner = User.objects.create(username="bench-row-shape").id
        meter = WalMeter(ENV.database)
        with connection.cursor() as cursor:
            columns, template = _setup(cursor, owner)
        rows, by_relation = [], {}
        for shape in SHAPES:
            with connection.cursor() as cursor:
                cursor.execute("CHECKPOINT")
            start = meter.lsn()
            started = time.perf_counter()
            with connection.cursor() as cursor:
                _lifecycle(cursor, shape, n, columns, template)
            seconds = time.perf_counter() - started
            wal = meter.measure(start, meter.lsn())
            per_job = [wal[key] / n for key in ("bytes", "record_bytes", "records", "index_entries")]
            rows.append([shape, *per_job, seconds * 1e6 / n])
            by_relation[shape] = sorted(meter.by_relation.items(), key=lambda item: -item[1])
        print_table(
            f"one job's insert (500 per statement), start and finish, {n:,} jobs per shape (autocommit)",
            ["shape", "WAL bytes / job", "without full pages", "WAL records / job", "B-tree entries / job", "µs / job"],
            rows,
        )
        for shape, sizes in by_relation.items():
            print_table(
                f"{shape}: WAL bytes per job by relation (5 B and up)",
                ["relation", "bytes"],
                [[k, v / n] for k, v in sizes if v / n >= 5],
            )
        today = rows[0][2]
        print(
            "\nratios: WAL per job vs today (without full-page images): "
            + ", ".join(f"{row[0]} {row[2] / today:.2f}x ({row[2]:,.0f} B)" for row in rows[1:])
            + f"; today {today:,.0f} B ({rows[0][1]:,.0f} B with them)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
