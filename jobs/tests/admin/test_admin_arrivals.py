"""The job list's arrivals view (``/admin/jobs/job/arrivals/``), which the list polls to say "N new
jobs — show" and to keep its "N jobs" count current: jobs created since the page was rendered,
under the list's own filters and search, among the jobs the user may see; bad input is a 400 in
JSON naming the problem, a user who may not see jobs a 403."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.services.creation import job_create
from taskhub.testing.admin import CHANGELIST, TASK, client_for, make_job, member_of

ARRIVALS = "/admin/jobs/job/arrivals/"


def create(owner, name: str, **request):
    return job_create(owner=owner, name=name, celery_task_name=TASK, args=[1], **request)


def test_the_list_page_carries_the_arrivals_url_and_when_it_was_rendered(operator_client, owner):
    before = timezone.now()
    page = operator_client.get(CHANGELIST, {"status__exact": "pending"}).content.decode()
    assert f'data-arrivals-url="{ARRIVALS}"' in page
    since = page.split('data-since="', 1)[1].split('"', 1)[0]
    assert before <= timezone.datetime.fromisoformat(since) <= timezone.now()
    assert "data-job-count" in page


def test_new_jobs_under_the_lists_filters_are_counted(operator_client, owner):
    make_job(owner, name="old one")
    since = timezone.now().isoformat()
    create(owner, "export a")
    create(owner, "export b", priority="high")
    create(owner, "import c")

    answer = operator_client.get(ARRIVALS, {"since": since}).json()
    assert answer == {"new": 3, "count": 4, "count_text": "4 jobs"}

    # The list's own filters and search: only what the page would list.
    answer = operator_client.get(ARRIVALS, {"since": since, "q": "export"}).json()
    assert answer == {"new": 2, "count": 2, "count_text": "2 jobs"}
    answer = operator_client.get(ARRIVALS, {"since": since, "priority__exact": "high"}).json()
    assert answer == {"new": 1, "count": 1, "count_text": "1 job"}
    answer = operator_client.get(ARRIVALS, {"since": since, "status__exact": "failed"}).json()
    assert answer == {"new": 0, "count": 0, "count_text": "0 jobs"}

    later = (timezone.now() + timedelta(seconds=1)).isoformat()
    assert operator_client.get(ARRIVALS, {"since": later}).json()["new"] == 0


def test_a_viewer_with_the_view_permission_sees_every_users_new_jobs(roles, owner):
    viewer = member_of("viewer", username="viewer-arrivals")
    since = timezone.now().isoformat()
    create(owner, "alice's")
    create(UserFactory(username="bob"), "bob's")
    answer = client_for(viewer).get(ARRIVALS, {"since": since}).json()
    assert answer["new"] == 2


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-12-06T10:00:00"}, "since"),  # no zone: ambiguous
        ({"since": "2026-12-06T10:00:00+00:00", "created_at__gte": "not-a-date"}, "filters"),
        ({"since": "2026-12-06T10:00:00+00:00", "no_such_field": "1"}, "filters"),
    ],
)
def test_bad_input_is_a_400_naming_the_problem(operator_client, query, names):
    response = operator_client.get(ARRIVALS, query)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid" and names in body["message"]


def test_who_may_not_see_jobs_gets_a_403_in_json(owner):
    staff = UserFactory(username="staff-no-perm", is_staff=True)
    since = timezone.now().isoformat()
    for client in (client_for(owner), client_for(staff)):
        response = client.get(ARRIVALS, {"since": since})
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"
