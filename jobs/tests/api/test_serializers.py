"""JobSerializer writes its fields out by hand (a list page's CPU): it must say exactly what DRF's
own field-by-field walk over the declared fields says, for jobs in every state."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import RequestFactory
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from accounts.tests.factories import UserFactory
from jobs import selectors
from jobs.models import JobPriority
from jobs.serializers import JobSerializer
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db

SERVER_TRACEBACK = (
    f'Traceback (most recent call last):\n  File "{settings.BASE_DIR}/jobs/x.py", line 1\nValueError: x\n'
)


def variety(owner):
    """A job in each status, and the fields a job may hold or leave empty."""
    canceller = UserFactory(username="canceller")
    periodic = PeriodicTask.objects.create(
        name="every minute",
        task="jobs.tasks.common_tasks.long_running_task",
        interval=IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES),
    )
    now = timezone.now()
    return [
        make(owner=owner),
        make(owner=owner, priority=JobPriority.URGENT, run_at=now + timedelta(seconds=30), args=[], kwargs={"a": [1]}),
        make("running", owner=owner, progress=40, progress_meta={"message": "step 2", "rows": 7}),
        make("running", owner=owner, progress_meta={"message": 12}, cancel_requested_at=now, cancelled_by=canceller),
        make("succeeded", owner=owner, result=[1, "two", {"three": None}]),
        make("succeeded", owner=owner, result=None, progress_meta=["not", "an", "object"]),
        make("failed", owner=owner, error=f"ValueError: in {settings.BASE_DIR}/jobs/x.py", traceback=SERVER_TRACEBACK),
        make("revoked", owner=owner, cancelled_by=canceller),
        make(owner=owner, schedule=periodic, scheduled_for=now.replace(microsecond=0)),
        make(owner=owner, created_at=now.replace(microsecond=0), name="ünïcode ✓"),
    ]


@pytest.mark.parametrize("names_only", [False, True])  # users loaded (the admin's query) or their names (the API's)
@pytest.mark.parametrize("staff", [False, True])
@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_the_written_out_fields_equal_drfs_walk(names_only, staff, zone, settings):
    settings.TIME_ZONE = zone
    owner = UserFactory(is_staff=staff)
    variety(owner)
    request = RequestFactory().get("/api/v1/jobs/")
    request.user = owner
    jobs = list(selectors.job_list(user=owner, names_only=names_only))
    assert len(jobs) >= 10
    serializer = JobSerializer(context={"request": request})
    for job in jobs:
        fast, generic = serializer.to_representation(job), serializer.represent_generically(job)
        assert fast == generic
        assert list(fast) == list(generic) == list(JobSerializer.Meta.fields)  # the same keys in the same order
    assert any(job.cancelled_by_id for job in jobs) and any(job.schedule_id for job in jobs)


def test_redaction_follows_the_reader_not_the_owner():
    owner, staff = UserFactory(), UserFactory(is_staff=True)
    job = make("failed", owner=owner, traceback=SERVER_TRACEBACK)
    for reader, shows in ((owner, False), (staff, True)):
        request = RequestFactory().get("/")
        request.user = reader
        data = JobSerializer(job, context={"request": request}).data
        assert (str(settings.BASE_DIR) in data["traceback"]) is shows
    assert str(settings.BASE_DIR) not in JobSerializer(job).data["traceback"]  # no request: redacted


def test_a_job_without_loaded_relations_reads_them():
    job = make("revoked", cancelled_by=UserFactory(username="who"))
    fresh = type(job).objects.get(id=job.id)  # nothing select_related
    data = JobSerializer(fresh).data
    assert data["owner"] == job.owner.username and data["cancelled_by"] == "who"


@pytest.mark.parametrize("staff", [False, True])
def test_a_list_pages_rows_say_what_their_jobs_say(staff, settings):
    """A list page serializes rows (dicts of ``LIST_COLUMNS``), not Jobs: the same answer, key for key."""
    settings.TIME_ZONE = "Asia/Kolkata"
    owner = UserFactory(is_staff=staff)
    variety(owner)
    make("succeeded", owner=owner, result=["x" * settings.JOB_LIST_INLINE_MAX_BYTES])  # left out of the page
    request = RequestFactory().get("/api/v1/jobs/")
    request.user = owner
    limit = settings.JOB_LIST_INLINE_MAX_BYTES
    page = selectors.job_list_page(selectors.job_list(user=owner, names_only=True), inline_max_bytes=limit)
    jobs = list(page.order_by("id"))
    rows = list(
        selectors.job_list_rows(user=owner, inline_max_bytes=limit, columns=JobSerializer.LIST_COLUMNS).order_by("id")
    )
    assert len(rows) == len(jobs) >= 11 and all(isinstance(row, dict) for row in rows)
    serializer = JobSerializer(context={"request": request})
    for row, job in zip(rows, jobs, strict=True):
        assert serializer.to_representation(row) == serializer.to_representation(job)
    assert any(serializer.to_representation(row)["result_truncated"] for row in rows)
    assert any(row["schedule_id"] for row in rows) and any(row["cancelled_by_username"] for row in rows)
