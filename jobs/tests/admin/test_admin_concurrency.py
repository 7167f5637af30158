"""Concurrency keys in the admin: the submit page's key and limit (checked by the same service as
the API, bad values on their fields, nothing written), the job page's key linked to its jobs, the
list's filter by key, and a waiting job's reason on the list, the job page and the progress view."""

import pytest

from jobs.models import Job
from jobs.services.creation import job_create
from jobs.services.execution import job_start
from jobs.tests.admin.test_admin_held import held_of, text_of
from jobs.tests.admin.test_admin_submit import ADD, form_data
from taskhub.testing.admin import CHANGELIST, TASK, change_url


def test_the_submit_page_creates_a_keyed_job(operator_client, operator):
    response = operator_client.post(ADD, form_data(concurrency_key="tenant-7", concurrency_limit="2"))
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get()
    assert (job.concurrency_key, job.concurrency_limit) == ("tenant-7", 2)
    operator_client.post(ADD, form_data(concurrency_key="tenant-8", submission="5f0c6a38-0f5c-4c29-9d43-1d1fb1b3e0a2"))
    assert Job.objects.get(concurrency_key="tenant-8").concurrency_limit == 1


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"concurrency_key": "k", "concurrency_limit": "0"}, "concurrency_limit"),
        ({"concurrency_key": "k", "concurrency_limit": "two"}, "concurrency_limit"),
        ({"concurrency_key": "k" * 256}, "concurrency_key"),
        ({"concurrency_limit": "3"}, "concurrency_key"),
    ],
)
def test_bad_values_are_refused_on_their_field_and_nothing_is_written(
    operator_client,
    nothing_written,
    fields,
    field,
):
    with nothing_written():
        response = operator_client.post(ADD, form_data(**fields))
    assert response.status_code == 200
    assert response.context["form"].errors.get(field), response.context["form"].errors


def test_a_waiting_job_says_why_and_the_list_filters_by_key(operator_client, owner, staff_user):
    running = job_create(owner=staff_user, celery_task_name=TASK, args=[1], concurrency={"key": "tenant-7", "limit": 1})
    waiting = job_create(owner=staff_user, celery_task_name=TASK, args=[1], concurrency={"key": "tenant-7", "limit": 1})
    other = job_create(owner=staff_user, celery_task_name=TASK, args=[1])
    job_start(job_id=running.id, worker="w:1")
    job_start(job_id=waiting.id, worker="w:2")

    reason = "waiting: concurrency key tenant-7 at its limit 1"
    assert reason in text_of(operator_client.get(CHANGELIST))
    page = text_of(operator_client.get(change_url(waiting)))
    assert reason in page and "tenant-7 (at most 1 at once)" in page
    assert held_of(operator_client, waiting)["held"] == {"reason": "concurrency", "until": None}

    filtered = operator_client.get(CHANGELIST, {"concurrency_key": "tenant-7"})
    shown = {str(job.pk) for job in filtered.context["cl"].result_list}
    assert shown == {str(running.pk), str(waiting.pk)} and str(other.pk) not in shown
