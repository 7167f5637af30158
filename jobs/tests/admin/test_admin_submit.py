"""Submitting a job from the admin (``/admin/jobs/job/add/``): a catalog task, its parameters
shown, arguments checked by the catalog through the same service as the API."""

import json
from contextlib import contextmanager

import pytest
from django.contrib.admin.models import ADDITION, LogEntry

from jobs.catalog import catalog
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from jobs.tests.factories import timeline
from taskhub.testing.admin import change_url, client_for, member_of, messages_of

ADD = "/admin/jobs/job/add/"
LONG = "jobs.tasks.common_tasks.long_running_task"
FLAKY = "jobs.tasks.common_tasks.flaky_task"
NOTIFY = "jobs.tasks.high_priority_tasks.send_notification"


def form_data(**changes) -> dict:
    data = {
        "task": LONG,
        "name": "",
        "task_type": "",
        "args": "[]",
        "kwargs": "{}",
        "priority": "",
        "max_retries": "",
        "submission": "5f0c6a38-0f5c-4c29-9d43-1d1fb1b3e0a1",
    }
    data.update(changes)
    return data


@pytest.fixture
def nothing_written(published, django_capture_on_commit_callbacks):
    @contextmanager
    def check():
        before = (Job.objects.count(), JobEvent.objects.count(), LogEntry.objects.count())
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            yield
        assert callbacks == []
        assert (Job.objects.count(), JobEvent.objects.count(), LogEntry.objects.count()) == before
        assert published == []

    return check


def test_the_form_offers_the_catalog_with_parameters_and_descriptions(operator_client):
    response = operator_client.get(ADD)

    assert response.status_code == 200
    html = response.content.decode()
    form = response.context["form"]
    assert [value for value, _ in form.fields["task"].choices] == ["", *(entry.name for entry in catalog.entries())]
    # Each task's description and parameters, readable (the selected one is shown, the others
    # are revealed by job_submit.js when chosen).
    for entry in catalog.entries():
        assert f'data-task="{entry.name}"' in html
    assert "Work for `seconds` seconds" in html  # long_running_task's description
    assert '<code class="job-param__name">seconds</code>' in html
    assert "integer, 0 to 14400, default 10" in html
    assert "args[0] or kwargs" in html
    assert "Any other keyword argument: string" in html
    assert "required" in html  # send_notification's `to` and `subject`
    assert "jobs/admin/job_submit.js" in html
    assert 'name="args"' in html and 'name="kwargs"' in html and 'name="priority"' in html


def test_a_task_can_be_preselected(operator_client):
    response = operator_client.get(ADD, {"task": FLAKY})

    assert response.context["form"]["task"].value() == FLAKY
    html = response.content.decode()
    assert f'<div class="job-task-info" data-task="{FLAKY}">' in html
    assert f'<div class="job-task-info" data-task="{LONG}" hidden>' in html


def test_submitting_creates_the_job_through_the_service(
    operator, operator_client, published, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(
            ADD,
            form_data(
                name="nightly export",
                task_type="export",
                args="[5]",
                kwargs='{"region": "eu"}',
                priority="high",
                max_retries="2",
            ),
        )

    job = Job.objects.get()
    assert response.status_code == 302 and response["Location"] == change_url(job)
    assert (job.owner, job.name, job.task_type, job.celery_task_name) == (operator, "nightly export", "export", LONG)
    assert (job.args, job.kwargs, job.priority, job.queue, job.max_retries) == (
        [5],
        {"region": "eu"},
        "high",
        "high_priority",
        2,
    )
    assert job.status == JobStatus.PENDING
    assert [message["id"] for message in published] == [str(job.pk)]
    (created,) = timeline(job)
    assert (created.kind, created.actor) == (JobEventKind.CREATED, operator)
    assert LogEntry.objects.filter(action_flag=ADDITION, object_id=str(job.pk), user=operator).exists()
    page = operator_client.get(response["Location"])
    assert "Job “nightly export” submitted." in messages_of(page)


def test_defaults_come_from_the_task(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(ADD, form_data(task=FLAKY, args="", kwargs=""))

    job = Job.objects.get()
    assert (job.name, job.priority, job.queue, job.max_retries) == ("flaky_task", "low", "low_priority", 3)
    assert (job.args, job.kwargs) == ([], {})


def test_submitting_the_same_form_twice_makes_one_job(operator_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = operator_client.post(ADD, form_data(kwargs='{"seconds": 1}'))
        second = operator_client.post(ADD, form_data(kwargs='{"seconds": 1}'))

    assert Job.objects.count() == 1
    assert first["Location"] == second["Location"]


def test_the_same_form_with_other_values_is_refused_with_a_fresh_form(operator_client, nothing_written):
    operator_client.post(ADD, form_data(kwargs='{"seconds": 1}'))
    with nothing_written():
        response = operator_client.post(ADD, form_data(kwargs='{"seconds": 2}'))

    form = response.context["form"]
    assert "already submitted" in " ".join(form.non_field_errors())
    assert form["submission"].value() != form_data()["submission"]  # submitting again makes a new job


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"args": "[1,"}, "args", "Enter a valid JSON."),
        ({"args": '{"seconds": 1}'}, "args", "Must be a JSON array."),
        ({"kwargs": "[1]"}, "kwargs", "Must be a JSON object."),
        ({"kwargs": '{"seconds": "abc"}'}, "kwargs", "parameter 'seconds' must be an integer, got str 'abc'"),
        ({"kwargs": '{"seconds": 99999}'}, "kwargs", "parameter 'seconds' must be at most 14400"),
        ({"args": "[1, 2]"}, "args", "takes at most 1 positional argument(s) (seconds), got 2"),
        ({"task": NOTIFY, "kwargs": '{"to": ["a@example.com"]}'}, "args", "missing required parameter 'subject'"),
        ({"task": "os.system"}, "task", "Select a valid choice."),
        ({"task": ""}, "task", "This field is required."),
        ({"priority": "whenever"}, "priority", "Select a valid choice."),
        ({"max_retries": "21"}, "max_retries", "less than or equal to 20"),
        ({"max_retries": "-1"}, "max_retries", "greater than or equal to 0"),
        ({"name": "n" * 201}, "name", "at most 200 characters"),
        ({"kwargs": json.dumps({"label": "x" * 300_000})}, "args", "the limit is"),
        ({"kwargs": '{"bad": "\\u0000"}'}, "kwargs", "\\u0000"),
        ({"submission": "not a uuid"}, "submission", "valid UUID"),
    ],
)
def test_bad_input_is_shown_on_its_field_and_nothing_is_written(
    operator_client, nothing_written, changes, field, words
):
    with nothing_written():
        response = operator_client.post(ADD, form_data(**changes))

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors[field]
    assert "errornote" in response.content.decode()


def test_submitting_needs_the_add_permission(roles, owner, nothing_written):
    viewer = client_for(member_of("viewer"))

    with nothing_written():
        assert viewer.get(ADD).status_code == 403
        assert viewer.post(ADD, form_data()).status_code == 403


def test_a_unique_key_dedupes_a_second_submission(operator_client, django_capture_on_commit_callbacks):
    rule = {"unique_key": "nightly", "unique_policy": "reject"}
    with django_capture_on_commit_callbacks(execute=True):
        first = operator_client.post(ADD, form_data(**rule))
        second = operator_client.post(ADD, form_data(**rule, submission="6f0c6a38-0f5c-4c29-9d43-1d1fb1b3e0a1"))
    job = Job.objects.get()
    assert (job.unique_key, job.unique_policy, job.duplicates) == ("nightly", "reject", 1)
    assert first["Location"] == second["Location"]


def test_a_bad_unique_rule_is_shown_on_its_field(operator_client, nothing_written):
    with nothing_written():
        response = operator_client.post(ADD, form_data(unique_key="k", unique_policy="throttle"))
    assert response.context["form"].errors["unique_period"]
