"""The admin's "Dead jobs" page: failed jobs with every automatic retry used, counted by task and
error type, each count a link to the job list filtered to them, where the list's own bulk actions
(retry, delete, "all matching") act on them."""

import re

import pytest
from django.contrib.auth.models import Permission

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobStatus
from jobs.tests.factories import make
from taskhub.testing.admin import client_for

pytestmark = pytest.mark.django_db

DEAD_PAGE = "/admin/jobs/job/dead/"
CHANGELIST = "/admin/jobs/job/"
FLAKY = "jobs.tasks.common_tasks.flaky_task"


@pytest.fixture
def dead_jobs(owner):
    return {
        "flaky_runtime": [
            make("failed", owner=owner, celery_task_name=FLAKY, error_type="RuntimeError", attempts=3, max_retries=3)
            for _ in range(3)
        ],
        "flaky_timeout": [
            make("failed", owner=owner, celery_task_name=FLAKY, error_type="TimeoutError", attempts=3, max_retries=3)
        ],
        "long_value": [make("failed", owner=owner, error_type="ValueError", attempts=0, max_retries=0)],
        # Not dead: failed before its retries were used (a non-retryable error), and a retrying job.
        "others": [
            make("failed", owner=owner, celery_task_name=FLAKY, error_type="RuntimeError", attempts=0, max_retries=3),
            make("pending", owner=owner, celery_task_name=FLAKY, attempts=1, max_retries=3),
        ],
    }


def _rows(html: str) -> list[tuple[str, str, str]]:
    """(task, error type, count) of the page's table body."""
    body = html.split('id="dead-jobs"', 1)[1].split("</table>", 1)[0]
    rows = []
    for row in re.findall(r"<tr class=\"dead-row\">(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        rows.append(tuple(cells[:3]))
    return rows


def test_the_page_counts_dead_jobs_by_task_and_error_type(operator_client, dead_jobs):
    response = operator_client.get(DEAD_PAGE)
    assert response.status_code == 200
    html = response.content.decode()
    assert _rows(html) == [
        ("flaky_task", "RuntimeError", "3"),
        ("flaky_task", "TimeoutError", "1"),
        ("long_running_task", "ValueError", "1"),
    ]
    assert "5 dead jobs" in html
    # Each count links to the job list, filtered to those jobs.
    assert f'href="{CHANGELIST}?celery_task_name={FLAKY}&amp;dead=yes&amp;error_type=RuntimeError"' in html
    assert f'href="{CHANGELIST}?dead=yes"' in html


def test_the_list_filtered_to_dead_jobs_shows_only_them(operator_client, dead_jobs):
    html = operator_client.get(CHANGELIST, {"dead": "yes", "celery_task_name": FLAKY, "error_type": "RuntimeError"})
    assert html.status_code == 200
    shown = set(re.findall(r'name="_selected_action" value="([0-9a-f-]+)"', html.content.decode()))
    assert shown == {str(job.id) for job in dead_jobs["flaky_runtime"]}
    everyone_dead = operator_client.get(CHANGELIST, {"dead": "yes"}).content.decode()
    assert len(set(re.findall(r'name="_selected_action" value="([0-9a-f-]+)"', everyone_dead))) == 5


def test_bulk_retry_and_delete_of_dead_jobs_are_the_lists_actions(operator_client, dead_jobs):
    runtime = [job.pk for job in dead_jobs["flaky_runtime"]]
    response = operator_client.post(
        f"{CHANGELIST}?dead=yes&error_type=RuntimeError", {"action": "retry", "_selected_action": runtime}
    )
    assert response.status_code == 302
    assert set(Job.objects.filter(pk__in=runtime).values_list("status", flat=True)) == {JobStatus.PENDING}
    timeout = [job.pk for job in dead_jobs["flaky_timeout"]]
    operator_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": timeout, "post": "yes"})
    assert not Job.objects.filter(pk__in=timeout).exists()
    assert _rows(operator_client.get(DEAD_PAGE).content.decode()) == [("long_running_task", "ValueError", "1")]


def test_a_viewer_sees_the_page_and_a_user_without_the_view_permission_does_not(dead_jobs):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    assert client_for(viewer).get(DEAD_PAGE).status_code == 200
    staff = UserFactory(is_staff=True)
    assert client_for(staff).get(DEAD_PAGE).status_code == 403


def test_no_dead_jobs_says_so(operator_client):
    html = operator_client.get(DEAD_PAGE).content.decode()
    assert "No dead jobs" in html


def test_the_admin_index_links_the_page(operator_client):
    assert f'href="{DEAD_PAGE}"' in operator_client.get("/admin/").content.decode()
