"""A job created in a transaction of its own (an API request, a bulk create) is sent before the
commit and written already marked sent (``_state.create``, ``dispatch.job_dispatch_in_transaction``):
one write per job instead of an insert and an UPDATE of ``dispatched_at`` after the commit, and no
moment between the commit and the send at which a dying process leaves a job unsent.

A message can then reach a worker before the commit: the start waits for the creating transaction
(its advisory lock, named in the message) and looks again."""

import threading
import time
from contextlib import contextmanager

import pytest
from django.db import DatabaseError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from jobs.models import Job, JobStatus, QueueControl
from jobs.services.creation import job_create, job_create_bulk
from jobs.services.execution import job_start

pytestmark = pytest.mark.django_db(transaction=True)

TASK = {"celery_task_name": "long_running_task", "args": [1]}


def headers_of(published_headers, job) -> dict:
    return next(h for h in published_headers if h["id"] == str(job.id))


@pytest.fixture
def published_headers():
    from celery.signals import after_task_publish

    seen: list[dict] = []

    def record(sender=None, headers=None, **extra):
        seen.append(dict(headers))

    after_task_publish.connect(record, weak=False)
    yield seen
    after_task_publish.disconnect(record)


def test_a_created_job_is_sent_and_marked_sent_by_its_insert_alone(user, published_headers):
    with CaptureQueriesContext(connection) as queries:
        job = job_create(owner=user, **TASK)
    writes = [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "WITH"))]
    assert len(writes) == 1, writes  # the job and its created line in one statement; no UPDATE of dispatched_at
    assert "UPDATE" not in writes[0]
    row = Job.objects.get(id=job.id)
    assert row.dispatched_at is not None and row.status == JobStatus.PENDING
    assert isinstance(headers_of(published_headers, job)["taskhub_creator_lock"], int)


def test_a_bulk_create_is_sent_inside_its_transaction_with_one_lock(user, published_headers):
    jobs = job_create_bulk(owner=user, items=[TASK] * 5)
    assert Job.objects.filter(id__in=[j.id for j in jobs], dispatched_at__isnull=False).count() == 5
    locks = {headers_of(published_headers, job)["taskhub_creator_lock"] for job in jobs}
    assert len(locks) == 1


def test_a_job_created_inside_a_larger_transaction_is_sent_after_its_commit(user, published_headers):
    """The caller's commit may be far away (the django.tasks backend in the application's own
    transaction): nothing is sent before it, and the send time is written after it."""
    with transaction.atomic():
        job = job_create(owner=user, **TASK)
        assert published_headers == []
        assert Job.objects.get(id=job.id).dispatched_at is None
    assert "taskhub_creator_lock" not in headers_of(published_headers, job)
    assert Job.objects.get(id=job.id).dispatched_at is not None


def test_a_paused_queue_job_is_written_unsent_and_not_sent(user, published_headers):
    QueueControl.objects.create(name="default", paused=True)
    job = job_create(owner=user, **TASK)
    assert published_headers == []
    assert Job.objects.get(id=job.id).dispatched_at is None  # held: resuming the queue sends it


def test_a_broker_refusal_clears_the_stamp_in_the_same_transaction(user, private_redis, use_broker):
    use_broker(private_redis.url)
    private_redis.stop()
    job = job_create(owner=user, **TASK)
    row = Job.objects.get(id=job.id)
    assert row.status == JobStatus.PENDING and row.dispatched_at is None  # the sweeper sends it


@contextmanager
def slow_commit(seconds: float, *, fail: bool):
    """The commit of a transaction that inserted a job takes ``seconds`` (a deferred constraint
    trigger sleeps at commit time), then succeeds or, with ``fail``, raises: the transaction rolls back."""
    table = Job._meta.db_table
    body = f"PERFORM pg_sleep({seconds});" + (" RAISE EXCEPTION 'refused at commit';" if fail else "")
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE OR REPLACE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN {body} "
            "RETURN NULL; END $$"
        )
        cursor.execute(
            f"CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON {table} DEFERRABLE INITIALLY DEFERRED "
            "FOR EACH ROW EXECUTE FUNCTION slow_commit()"
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS slow_commit ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS slow_commit()")


def _create(user, out: dict) -> None:
    """In a thread of its own: create a job (its own transaction, as an API request)."""
    try:
        out["job"] = job_create(owner=user, **TASK)
    except DatabaseError as exc:
        out["error"] = exc
    finally:
        connections.close_all()


@pytest.mark.parametrize("roll_back", [False, True], ids=["committed", "rolled back"])
def test_a_start_before_the_creators_commit_waits_for_it(user, published_headers, roll_back):
    out: dict = {}
    with slow_commit(1.5, fail=roll_back):
        creator = threading.Thread(target=_create, args=(user, out))
        creator.start()
        deadline = time.monotonic() + 10
        while not published_headers and time.monotonic() < deadline:
            time.sleep(0.01)
        message = published_headers[0]
        job_id, lock = message["id"], message["taskhub_creator_lock"]
        # Without the lock the row is not visible yet: the start matches nothing.
        assert job_start(job_id=job_id, worker="w:1") is None
        started_at = time.monotonic()
        started = job_start(job_id=job_id, worker="w:1", creator_lock=lock)
        waited = time.monotonic() - started_at
        creator.join()
    assert 0.5 < waited < 5
    if roll_back:
        assert "error" in out and started is None
        assert not Job.objects.filter(id=job_id).exists()
    else:
        assert started is not None and str(started.id) == job_id
        assert Job.objects.get(id=job_id).status == JobStatus.RUNNING


@pytest.fixture
def redis_sends(monkeypatch):
    """The packed commands this process writes to any Redis server (each write is one round trip:
    a pipeline's commands go in one), recorded around redis-py's own send."""
    from redis.connection import AbstractConnection

    sends: list[bytes] = []
    send = AbstractConnection.send_packed_command

    def record(self, command, check_health=True):
        sends.append(command if isinstance(command, bytes) else b"".join(command))
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", record)
    return sends


def test_a_bulk_create_sends_its_messages_in_one_broker_round_trip(user, private_redis, use_broker, redis_sends):
    import redis

    use_broker(private_redis.url)
    job_create(owner=user, **TASK)  # the connection and the queue's binding, once per process
    server = redis.Redis.from_url(private_redis.url)
    server.config_resetstat()
    redis_sends.clear()
    jobs = job_create_bulk(owner=user, items=[TASK] * 50)
    pushes = [send for send in redis_sends if b"LPUSH" in send]
    assert len(pushes) == 1, f"{len(pushes)} round trips for 50 messages"
    assert server.info("commandstats")["cmdstat_lpush"]["calls"] == 50
    assert server.llen("default") == 51
    assert Job.objects.filter(id__in=[job.id for job in jobs], dispatched_at__isnull=False).count() == 50


def test_a_bulk_create_with_the_broker_down_leaves_every_job_unsent(user, private_redis, use_broker):
    use_broker(private_redis.url)
    job_create(owner=user, **TASK)  # a connection that worked, then the broker goes away
    private_redis.stop()
    jobs = job_create_bulk(owner=user, items=[TASK] * 5)
    rows = Job.objects.filter(id__in=[job.id for job in jobs])
    assert [row.dispatched_at for row in rows] == [None] * 5  # the sweeper sends them
    assert {row.status for row in rows} == {JobStatus.PENDING}
