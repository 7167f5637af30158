"""The list and detail answers, byte for byte, as they were before the list page was made lighter
(``golden_answers.json``, written by this test at commit c9138d4 with ``TASKHUB_WRITE_GOLDEN=1``).

Fixed ids, times, names and values; the only thing that varies between runs is the users' ids,
written into the file as ``{owner_id}``, and the checkout's path
(``{base_dir}``). Pages of the owner (first, the ``next`` link, its
``previous``), with a filter and a search (the FilterSet's path), a staff viewer's page (every job,
server paths shown), a page in another time zone, and details.
"""

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from jobs.models import JobPriority
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db

GOLDEN = Path(__file__).with_name("golden_answers.json")
START = datetime(2026, 3, 4, 5, 6, 7, 891234, tzinfo=UTC)
SERVER_TRACEBACK = (
    f'Traceback (most recent call last):\n  File "{settings.BASE_DIR}/jobs/x.py", line 1\nValueError: x\n'
)


def job_id(n: int) -> uuid.UUID:
    return uuid.UUID(int=0x6A0B_0000_0000_4000_8000_0000_0000_0000 + n)


def fill(owner, canceller, other):
    at = [START - timedelta(minutes=n) for n in range(12)]
    large = ["x" * (settings.JOB_LIST_INLINE_MAX_BYTES + 10)]
    limit = {"concurrency_limit": 2}
    rows = [
        ("pending", {"run_at": START + timedelta(seconds=30), "priority": JobPriority.URGENT, "args": []}),
        ("running", {"progress": 40, "progress_meta": {"message": "step 2", "rows": 7}, "kwargs": {"a": [1, 2.5]}}),
        ("running", {"progress_meta": {"message": 12}, "cancel_requested_at": START, "cancelled_by": canceller}),
        ("succeeded", {"result": [1, "two", {"three": None, "four": 1e-05}]}),
        ("succeeded", {"result": None, "progress_meta": ["not", "an", "object"], "args": large}),
        ("failed", {"error": f"ValueError: in {settings.BASE_DIR}/jobs/x.py", "traceback": SERVER_TRACEBACK}),
        ("revoked", {"cancelled_by": canceller, "kwargs": {"big": large}}),
        ("succeeded", {"result": {"big": large}, "name": "ünïcode ✓ \u2028", "concurrency_key": "k"} | limit),
        ("pending", {"unique_key": "u-1", "unique_policy": "", "expires_at": START + timedelta(days=1)}),
        ("pending", {"name": "nightly report", "task_type": "reports", "max_retries": 5}),
    ]
    for n, (status, fields) in enumerate(rows):
        fields.setdefault("name", f"golden {n}")
        times = {"created_at": at[n]}
        if status != "pending":
            times |= {"dispatched_at": at[n], "started_at": at[n] + timedelta(seconds=1), "heartbeat_at": at[n]}
        if status in ("succeeded", "failed", "revoked"):
            times["finished_at"] = at[n] + timedelta(seconds=2, microseconds=500)
        if status == "revoked":
            times["cancel_requested_at"] = at[n] + timedelta(seconds=1, microseconds=1)
        make(status, id=job_id(n), owner=owner, **times, **{"worker": "w@h:1"} | fields)
    make(id=job_id(99), owner=other, name="another's", created_at=at[11])


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    return client


def answers(owner, staff) -> dict[str, str]:
    mine, staffs = client_for(owner), client_for(staff)
    bodies = {}

    def get(name: str, client: APIClient, url: str) -> dict:
        response = client.get(url)
        assert response.status_code == 200, response.content
        bodies[name] = response.content.decode()
        return response.json()

    first = get("first page", mine, "/api/v1/jobs/?page_size=4")
    second = get("next page", mine, first["next"])
    get("previous page", mine, second["previous"])
    get("default page", mine, "/api/v1/jobs/")
    get("spec prefix", mine, "/api/v1/tasks/?page_size=3")
    get("filtered", mine, "/api/v1/jobs/?status=pending&status=succeeded&search=golden&page_size=3")
    get("staff page", staffs, "/api/v1/jobs/?page_size=200")
    for n in (1, 4, 5, 7):
        get(f"detail {n}", mine, f"/api/v1/jobs/{job_id(n)}/")
    get("staff detail 5", staffs, f"/api/v1/jobs/{job_id(5)}/")
    return bodies


@pytest.mark.parametrize("zone", ["UTC", "America/St_Johns"])
def test_list_and_detail_answers_are_unchanged(zone, settings):
    settings.TIME_ZONE = zone
    owner = UserFactory(username="golden-owner")
    other = UserFactory(username="golden-other")
    staff = UserFactory(username="golden-staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    fill(owner, UserFactory(username="golden-canceller"), other)
    placeholders = {
        f'"owner_id":{owner.id},': '"owner_id":{owner_id},',
        f'"owner_id":{other.id},': '"owner_id":{other_id},',
        json.dumps(str(settings.BASE_DIR))[1:-1]: "{base_dir}",  # shown to staff only
    }
    got = {}
    for name, body in answers(owner, staff).items():
        for value, placeholder in placeholders.items():
            got[name] = (got.get(name) or body).replace(value, placeholder)
    key = f"zone {zone}"
    if os.environ.get("TASKHUB_WRITE_GOLDEN") == "1":
        stored = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
        stored[key] = got
        GOLDEN.write_text(json.dumps(stored, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    expected = json.loads(GOLDEN.read_text())[key]
    assert sorted(got) == sorted(expected)
    for name in expected:
        assert got[name] == expected[name], name
