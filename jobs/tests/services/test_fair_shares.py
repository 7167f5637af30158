"""Fair shares: one user cannot take every worker (Security II, found 1).

A user's running jobs are capped at the start, in the start's transaction (``_quotas``); a job
over the cap is deferred a little and tried again, nothing fails. The default cap is a share
(JOB_FAIR_SHARE, 0.5) of the worker processes alive for the job's queue, at least 1: tested as it
ships. Urgent priority is a right (``jobs.submit_urgent``) that plain users do not have.
"""

import threading
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conftest import assert_error
from jobs.models import Job, JobEvent, JobEventKind, JobStatus, WorkerHeartbeat
from jobs.services.execution import job_start
from jobs.services.gates import forget_capacity, limits_for, workers_alive_for
from jobs.tests.factories import LONG_RUNNING_TASK, make
from jobs.tests.faults.test_dispatch_faults import trigger
from taskhub.testing import wait_for
from taskhub.testing.admin import ensure_roles

CREATE = "/api/v1/jobs/"


@pytest.fixture(autouse=True)
def _fresh_capacity():
    """The worker processes alive are cached per process for 5 s: each test counts its own."""
    forget_capacity()
    yield
    forget_capacity()


def alive(n: int) -> None:
    """``n`` worker processes seen alive now, consuming the job queues (and no other)."""
    WorkerHeartbeat.objects.all().delete()
    now = timezone.now()
    WorkerHeartbeat.objects.bulk_create(
        WorkerHeartbeat(
            hostname="celery@test",
            pid=1000 + i,
            queues=["high_priority", "default", "low_priority"],
            started_at=now,
            last_seen=now,
        )
        for i in range(n)
    )


@pytest.mark.django_db
def test_with_the_defaults_a_user_runs_half_the_workers_alive_and_the_next_job_waits(user, other_user):
    alive(4)  # two workers of concurrency 2: a share of 2
    first, second, third = (make(owner=user) for _ in range(3))
    assert job_start(job_id=first.id, worker="w:1") is not None
    assert job_start(job_id=second.id, worker="w:2") is not None
    assert job_start(job_id=third.id, worker="w:3") is None

    waiting = Job.objects.get(id=third.id)
    assert waiting.status == JobStatus.PENDING and waiting.dispatched_at is None
    assert waiting.run_at > timezone.now()
    line = JobEvent.objects.get(job_id=third.id)
    assert line.kind == JobEventKind.FAIR_SHARE
    assert "already runs 2 jobs" in line.message and "4 worker processes alive" in line.message
    assert line.data["cap"] == 2 and line.data["capacity"] == 4
    # Another user's job starts at once.
    assert job_start(job_id=make(owner=other_user).id, worker="w:4") is not None


@pytest.mark.django_db
def test_a_job_over_the_share_starts_once_one_of_its_owners_jobs_ends(user):
    alive(2)
    running, waiting = make(owner=user), make(owner=user)
    assert job_start(job_id=running.id, worker="w:1") is not None
    assert job_start(job_id=waiting.id, worker="w:2") is None
    Job.objects.filter(id=running.id).update(status=JobStatus.SUCCEEDED, finished_at=timezone.now())
    Job.objects.filter(id=waiting.id).update(run_at=None)  # its wait is over
    assert job_start(job_id=waiting.id, worker="w:2") is not None


@pytest.mark.django_db
def test_with_no_worker_seen_yet_the_share_is_one_job(user):
    WorkerHeartbeat.objects.all().delete()
    first, second = make(owner=user), make(owner=user)
    assert job_start(job_id=first.id, worker="w:1") is not None
    assert job_start(job_id=second.id, worker="w:2") is None


@pytest.mark.django_db
def test_a_users_own_cap_overrides_the_setting_and_0_means_no_cap(user, settings):
    user.max_running_jobs = 3
    user.save()
    jobs = [make(owner=user) for _ in range(4)]
    assert [job_start(job_id=job.id, worker="w") is not None for job in jobs] == [True, True, True, False]

    user.max_running_jobs = 0
    user.save()
    assert job_start(job_id=make(owner=user).id, worker="w") is not None


@pytest.mark.django_db
def test_a_fixed_setting_and_0_for_no_cap(user, settings):
    settings.JOB_QUOTA_MAX_RUNNING = "1"
    assert job_start(job_id=make(owner=user).id, worker="w") is not None
    assert job_start(job_id=make(owner=user).id, worker="w") is None
    settings.JOB_QUOTA_MAX_RUNNING = "0"
    assert job_start(job_id=make(owner=user).id, worker="w") is not None


@pytest.mark.django_db
def test_an_owner_without_a_cap_starts_in_one_statement_and_a_capped_one_adds_the_count(user, staff_user):
    for owner, expected in ((staff_user, ["WITH"]), (user, ["WITH", "SELECT"])):
        job = make(owner=owner)
        limits_for(queue=job.queue, task=job.celery_task_name)  # per-process caches, as on a worker
        workers_alive_for(job.queue)
        with CaptureQueriesContext(connection) as queries:
            assert job_start(job_id=job.id, worker="w") is not None
        statements = [q["sql"].split()[0] for q in queries.captured_queries]
        assert [s for s in statements if s in ("SELECT", "UPDATE", "INSERT", "WITH")] == expected
        start = next(q["sql"] for q in queries.captured_queries if q["sql"].split()[0] == "WITH")
        assert "pg_advisory_xact_lock" in start  # the start itself takes the owner's share lock


@pytest.mark.django_db
def test_staff_are_exempt_while_the_quota_setting_says_so(staff_user, settings):
    assert all(job_start(job_id=make(owner=staff_user).id, worker="w") for _ in range(3))
    settings.JOB_QUOTA_EXEMPT_STAFF = False
    assert job_start(job_id=make(owner=staff_user).id, worker="w") is None


@pytest.mark.django_db
def test_a_backlog_waits_longer_between_tries_up_to_the_maximum(user):
    alive(2)
    make("running", owner=user)
    for _ in range(100):
        make(owner=user)
    late = make(owner=user)
    before = timezone.now()
    assert job_start(job_id=late.id, worker="w") is None
    wait = (Job.objects.get(id=late.id).run_at - before).total_seconds()
    assert 29 <= wait <= 31  # JOB_FAIR_SHARE_MAX_WAIT: 30 s


@pytest.mark.django_db(transaction=True)
def test_racing_starts_of_one_users_jobs_cannot_both_take_the_last_place(user):
    """Four threads start four jobs of one user at the same moment, with a share of 1: exactly one
    runs. A trigger holds every update of a job for 0.2 s, so without the lock on the owner all
    four would count only their own start."""
    jobs = [make(owner=user) for _ in range(4)]
    barrier = threading.Barrier(4)
    started: list[bool] = []

    def start(job) -> None:
        try:
            barrier.wait()
            started.append(job_start(job_id=job.id, worker="w") is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=start, args=(job,)) for job in jobs]
    with trigger("slow_job_update", "BEFORE UPDATE", "ROW", "PERFORM pg_sleep(0.2); RETURN NEW;"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(started) == [False, False, False, True]
    assert Job.objects.filter(owner=user, status=JobStatus.RUNNING).count() == 1


@pytest.mark.django_db
def test_urgent_is_a_permission_plain_users_do_not_have(user, user_client, nothing_written):
    with nothing_written():
        response = user_client.post(
            CREATE, {"celery_task_name": LONG_RUNNING_TASK, "priority": "urgent"}, format="json"
        )
    body = assert_error(response, 403, "permission_denied", field="priority")
    assert "jobs.submit_urgent" in body["message"]


@pytest.mark.django_db
def test_operators_and_superusers_may_submit_urgent_jobs(user, user_client, staff_user):
    user.groups.add(ensure_roles()["operator"])
    response = user_client.post(CREATE, {"celery_task_name": LONG_RUNNING_TASK, "priority": "urgent"}, format="json")
    assert response.status_code == 201, response.content
    staff_user.is_superuser = True
    staff_user.save()
    from jobs.services.creation import job_create

    assert job_create(owner=staff_user, celery_task_name=LONG_RUNNING_TASK, priority="urgent").priority == "urgent"


@pytest.mark.django_db
def test_a_task_whose_own_default_is_urgent_still_runs_urgent_for_anyone(user, user_client):
    body = {"celery_task_name": "send_notification", "kwargs": {"to": [user.email], "subject": "s"}}
    response = user_client.post(CREATE, body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["priority"] == "urgent"


@pytest.mark.worker
@pytest.mark.timeout(180)
def test_one_users_ten_long_jobs_leave_room_for_another_users_job(make_worker, user_client, other_client):
    """Two worker processes of concurrency 2, production defaults: user A's ten long jobs (normal:
    urgent is refused to them) run two at a time; user B's job starts within 5 s of being created."""
    make_worker(concurrency=2)
    make_worker(concurrency=2)
    wait_for(lambda: WorkerHeartbeat.objects.count() >= 4, timeout=30, message="4 pool processes alive")
    body = {"celery_task_name": LONG_RUNNING_TASK, "kwargs": {"seconds": 120}}
    hogs = [user_client.post(CREATE, body, format="json").json()["id"] for _ in range(10)]
    wait_for(lambda: Job.objects.filter(id__in=hogs, status=JobStatus.RUNNING).count() >= 2, timeout=30)
    time.sleep(3)  # what the workers make of the other eight
    assert Job.objects.filter(id__in=hogs, status=JobStatus.RUNNING).count() == 2

    created = time.monotonic()
    response = other_client.post(
        CREATE, {"celery_task_name": LONG_RUNNING_TASK, "kwargs": {"seconds": 0}}, format="json"
    )
    assert response.status_code == 201, response.content
    other = response.json()["id"]
    wait_for(lambda: Job.objects.get(id=other).started_at, timeout=5, interval=0.05, message="B started within 5 s")
    print(f"user B's job started {time.monotonic() - created:.2f} s after it was created")
    for job_id in hogs:
        user_client.post(f"/api/v1/jobs/{job_id}/cancel/")
    # Stopped cooperatively at their next progress report: the workers are idle when they stop.
    wait_for(lambda: not Job.objects.filter(id__in=hogs, status=JobStatus.RUNNING).exists(), timeout=30)


@pytest.mark.django_db
def test_a_start_holds_its_owners_share_lock_and_writes_nothing_to_the_owners_row(user):
    """The share's lock is an advisory lock per owner, held until the start's transaction ends: the
    owner's row is neither locked nor written (a row lock wrote a WAL record at every start)."""
    from django.db import transaction

    share_lock_class = 0x7461736B  # its class (jobs.services._quotas.SHARE_LOCK_CLASS)
    job = make(owner=user)
    with connection.cursor() as cursor:
        cursor.execute("SELECT xmin::text, xmax::text FROM accounts_user WHERE id = %s", [user.id])
        row_before = cursor.fetchone()
    with transaction.atomic():
        assert job_start(job_id=job.id, worker="w") is not None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT mode, granted FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objid = %s"
                " AND objsubid = 2 AND pid = pg_backend_pid()",
                [share_lock_class, user.id],
            )
            assert cursor.fetchall() == [("ExclusiveLock", True)]
            cursor.execute("SELECT xmin::text, xmax::text FROM accounts_user WHERE id = %s", [user.id])
            assert cursor.fetchone() == row_before  # no row lock: xmax untouched
