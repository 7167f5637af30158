"""The job page's "Edit and retry": the job's args, kwargs and priority in a form, checked by the same
service as the API's retry body (errors on the fields, nothing changed), the change in the timeline."""

import json

import pytest
from django.contrib.auth.models import Permission

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEvent, JobStatus
from jobs.tests.factories import make, snapshot
from taskhub.testing.admin import client_for

pytestmark = pytest.mark.django_db


def url(job) -> str:
    return f"/admin/jobs/job/{job.pk}/edit-retry/"


@pytest.fixture
def failed(owner):
    return make("failed", owner=owner, args=[], kwargs={"seconds": 3600})


def test_the_job_page_links_the_form_and_the_form_shows_the_jobs_values(operator_client, failed):
    page = operator_client.get(f"/admin/jobs/job/{failed.pk}/change/").content.decode()
    assert f'href="{url(failed)}"' in page
    response = operator_client.get(url(failed))
    assert response.status_code == 200
    form = response.context["form"]
    assert (json.loads(form["kwargs"].value()), json.loads(form["args"].value()), form["priority"].value()) == (
        {"seconds": 3600},
        [],
        "normal",
    )


def test_corrected_kwargs_retry_the_job_and_the_timeline_keeps_the_change(operator_client, operator, failed):
    response = operator_client.post(url(failed), {"args": "[]", "kwargs": '{"seconds": 2}', "priority": "high"})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == f"/admin/jobs/job/{failed.pk}/change/"
    job = Job.objects.get(pk=failed.pk)
    assert (job.status, job.kwargs, job.priority, job.queue) == (
        JobStatus.PENDING,
        {"seconds": 2},
        "high",
        "high_priority",
    )
    line = JobEvent.objects.get(job=failed, kind="retried")
    assert line.actor_id == operator.pk
    assert line.data["changes"] == {
        "kwargs": {"before": {"seconds": 3600}, "after": {"seconds": 2}},
        "priority": {"before": "normal", "after": "high"},
    }


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"args": "[]", "kwargs": '{"seconds": "many"}', "priority": "normal"}, "kwargs"),
        ({"args": "[]", "kwargs": "{not json", "priority": "normal"}, "kwargs"),
        ({"args": "[]", "kwargs": "[1]", "priority": "normal"}, "kwargs"),
        ({"args": '{"a": 1}', "kwargs": "{}", "priority": "normal"}, "args"),
        ({"args": "[]", "kwargs": "{}", "priority": "soon"}, "priority"),
    ],
)
def test_bad_values_show_on_their_field_and_change_nothing(operator_client, failed, data, field):
    before = snapshot(failed)
    response = operator_client.post(url(failed), data)
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors
    assert snapshot(failed) == before and not JobEvent.objects.filter(job=failed).exists()


def test_a_viewer_may_not_edit_and_retry(failed):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(content_type__app_label="jobs", codename="view_job"))
    client = client_for(viewer)
    assert client.get(url(failed)).status_code == 403
    assert client.post(url(failed), {"args": "[]", "kwargs": "{}", "priority": "normal"}).status_code == 403
    assert Job.objects.get(pk=failed.pk).status == JobStatus.FAILED


def test_a_job_that_did_not_fail_is_refused_with_the_services_reason(operator_client, owner):
    done = make("succeeded", owner=owner)
    response = operator_client.post(url(done), {"args": "[1]", "kwargs": "{}", "priority": "normal"}, follow=True)
    assert "Cannot retry" in response.content.decode() or "succeeded" in response.content.decode()
    assert Job.objects.get(pk=done.pk).status == JobStatus.SUCCEEDED
