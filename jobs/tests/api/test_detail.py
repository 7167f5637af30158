"""One job through the API: its detail (no server paths for its owner, staff see them) and its
timeline."""

import json
from pathlib import Path

import celery
import pytest
from django.conf import settings

from conftest import assert_error
from jobs.models import JobEvent
from jobs.tests.factories import PREFIXES, SPEC_BODY, JobFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("prefix", PREFIXES)
def test_detail_of_an_own_job(user, user_client, prefix):
    job = JobFactory(owner=user, failed=True)
    for url in (f"{prefix}{job.id}/", f"{prefix}{job.id}", f"{prefix}{job.id.hex}/"):
        response = user_client.get(url)
        assert response.status_code == 200, (url, response.content)
        body = response.json()
        assert (body["id"], body["status"], body["error"]) == (
            str(job.id),
            "failed",
            "RuntimeError: boom",
        )
        assert body["traceback"].startswith("Traceback")


def test_a_users_failed_job_shows_no_server_paths_staff_see_them(user, user_client, staff_viewer, staff_client):
    project_file = settings.BASE_DIR / "jobs" / "tasks" / "common_tasks.py"
    library_file = Path(celery.__file__).parent / "app" / "trace.py"
    traceback = (
        "Traceback (most recent call last):\n"
        f'  File "{library_file}", line 453, in trace_task\n'
        f'  File "{project_file}", line 40, in process_data\n'
        '  File "/opt/elsewhere/vendor/lib.py", line 7, in parse\n'
        f"FileNotFoundError: [Errno 2] No such file or directory: '{settings.BASE_DIR}/var/in.csv'\n"
    )
    job = JobFactory(owner=user, failed=True, traceback=traceback, error=traceback.splitlines()[-1])
    JobEvent.objects.create(job=job, kind="failed", data={"traceback": traceback, "attempt": 1}, message=job.error)
    server = [str(settings.BASE_DIR), str(library_file.parent), "/opt/elsewhere"]
    mine = user_client.get(f"/api/v1/jobs/{job.id}/").json()
    events = user_client.get(f"/api/v1/jobs/{job.id}/events/").json()
    shown = mine["traceback"] + mine["error"] + json.dumps(events)
    assert not [path for path in server if path in shown], shown
    assert 'File "jobs/tasks/common_tasks.py", line 40' in mine["traceback"]
    assert 'File "lib.py", line 7' in mine["traceback"] and "<python>/" in mine["traceback"]
    assert events[-1]["data"]["attempt"] == 1  # after the lines its row derives (created, started)
    # Staff (operators) see the full text.
    assert staff_client.get(f"/api/v1/jobs/{job.id}/").json()["traceback"] == traceback
    assert staff_client.get(f"/api/v1/jobs/{job.id}/events/").json()[-1]["data"]["traceback"] == traceback


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/jobs/00000000-0000-0000-0000-000000000000/",
        "/api/v1/jobs/------------------------------------/",
        "/api/v1/jobs/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-/",
        "/api/v1/jobs/not-a-job/",
    ],
)
def test_detail_of_an_unknown_or_malformed_id_is_404(user_client, path):
    assert_error(user_client.get(path), 404, code="not_found")


def test_events_show_the_timeline(user, user_client):
    created = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json").json()
    assert user_client.post(f"/api/v1/tasks/{created['id']}/cancel").status_code == 200
    for prefix in PREFIXES:
        response = user_client.get(f"{prefix}{created['id']}/events/")
        assert response.status_code == 200
        events = response.json()
        assert [(e["kind"], e["from_status"], e["to_status"], e["actor"]) for e in events] == [
            ("created", "", "pending", user.username),
            ("revoked", "pending", "revoked", user.username),
        ]
