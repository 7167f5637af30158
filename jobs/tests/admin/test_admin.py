"""The job admin through Django's test client: list, filters, search, actions, job page and
permissions. Every change is checked on the rows the services wrote (live parts: test_admin_live)."""

import uuid
from datetime import timedelta

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.admin import pagination
from jobs.models import Job, JobEvent, JobEventKind, JobStatus
from taskhub.testing.admin import CHANGELIST, PROGRESS, change_url, make_job, messages_of, run_action

# --- the list -----------------------------------------------------------------------------------


def test_changelist_shows_badges_and_progress_bars(operator_client, owner):
    running = make_job(
        owner,
        JobStatus.RUNNING,
        name="training",
        progress=40,
        progress_meta={"message": "epoch 2/5"},
    )
    make_job(owner, JobStatus.SUCCEEDED, name="report", progress=100, result={"rows": 3})
    make_job(owner, JobStatus.FAILED, name="import")
    make_job(owner, JobStatus.PENDING, name="queued")
    make_job(owner, JobStatus.REVOKED, name="stopped")
    make_job(owner, JobStatus.RUNNING, name="stopping", cancel_requested_at=timezone.now())

    response = operator_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    for variant in (
        "pending",
        "running",
        "succeeded",
        "failed",
        "revoked",
        "cancelling",
    ):
        assert f"job-badge job-badge--{variant}" in html
    assert ">Cancelling</span>" in html
    assert f'data-job-id="{running.pk}" data-job-part="progress" data-job-active="true"' in html
    assert 'style="width: 40%"' in html
    assert "epoch 2/5" in html
    assert 'class="job-progress__percent">40%<' in html
    # Live updates: the stylesheet and the poller with its URL.
    assert "jobs/admin/jobs.css" in html
    assert f'data-progress-url="{PROGRESS}"' in html
    # Owner, priority (with the queue) and attempt columns.
    for column in ("column-owner", "column-priority_queue", "column-attempt"):
        assert column in html
    assert ">alice<" in html


def test_changelist_offers_submit_and_only_service_backed_actions(operator_client, owner):
    make_job(owner)

    response = operator_client.get(CHANGELIST)

    html = response.content.decode()
    assert 'href="/admin/jobs/job/add/"' in html and "Submit a job" in html
    choices = [value for value, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "cancel", "retry", "delete_selected"]
    assert "Delete selected jobs" in html
    # The README says jobs can be submitted through the admin (issue: the add page was a 403).
    assert operator_client.get("/admin/jobs/job/add/").status_code == 200


def test_list_columns_are_compact(operator_client, owner):
    """One "when" column instead of three time columns; priority carries the queue; attempts are
    counted from 1 ("attempt 2 of 4" reads 2/4)."""
    make_job(owner, JobStatus.RUNNING, attempts=1, max_retries=3, worker="celery@worker-7.example.com")

    html = operator_client.get(CHANGELIST).content.decode()

    for gone in ("column-created", "column-started", "column-finished", "column-queue"):
        assert gone not in html
    for column in ("column-when", "column-attempt", "column-priority_queue", "column-owner"):
        assert column in html
    assert 'data-job-part="attempt"' in html and ">2/4<" in html
    assert "worker-7" in html  # the worker, abbreviated to its host


def test_filters(operator_client, owner):
    make_job(owner, JobStatus.FAILED, name="failed-normal")
    make_job(
        owner,
        JobStatus.SUCCEEDED,
        name="urgent-one",
        priority="urgent",
        queue="high_priority",
    )
    make_job(owner, JobStatus.PENDING, name="low-one", priority="low", queue="low_priority")
    make_job(
        owner,
        JobStatus.SUCCEEDED,
        name="model",
        celery_task_name="jobs.tasks.model_tasks.train_model",
    )
    make_job(
        owner,
        JobStatus.SUCCEEDED,
        name="ancient",
        created_at=timezone.now() - timedelta(days=60),
    )

    def names(**query) -> set[str]:
        response = operator_client.get(CHANGELIST, query)
        assert response.status_code == 200, query
        return {job.name for job in response.context["cl"].result_list}

    assert names(status__exact="failed") == {"failed-normal"}
    assert names(priority__exact="urgent") == {"urgent-one"}
    assert names(queue="low_priority") == {"low-one"}
    assert names(celery_task_name="jobs.tasks.model_tasks.train_model") == {"model"}
    # "Past 7 days", as the created_at filter links it.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    recent = names(
        created_at__gte=str(today - timedelta(days=7)),
        created_at__lt=str(today + timedelta(days=1)),
    )
    assert "ancient" not in recent and "model" in recent
    # The date hierarchy.
    old_year = (timezone.now() - timedelta(days=60)).year
    assert "ancient" in names(created_at__year=old_year)
    # The filter sidebar offers the queues and the registered tasks.
    html = operator_client.get(CHANGELIST).content.decode()
    assert "?queue=high_priority" in html
    assert "?celery_task_name=jobs.tasks.common_tasks.long_running_task" in html


def test_filtered_list_does_not_count_the_whole_table(operator_client, owner):
    make_job(owner, JobStatus.FAILED)
    make_job(owner, JobStatus.SUCCEEDED)

    response = operator_client.get(f"{CHANGELIST}?status__exact=failed")

    assert response.context["cl"].show_full_result_count is False
    assert "total)" not in response.content.decode()


def test_search_by_name_task_owner_and_id(operator_client, owner):
    nightly = make_job(owner, name="nightly export")
    make_job(
        UserFactory(username="bob"),
        name="model fit",
        celery_task_name="jobs.tasks.model_tasks.train_model",
    )

    def names(term: str) -> set[str]:
        response = operator_client.get(CHANGELIST, {"q": term})
        assert response.status_code == 200
        return {job.name for job in response.context["cl"].result_list}

    assert names("nightly") == {"nightly export"}
    assert names("train_model") == {"model fit"}
    assert names("bob") == {"model fit"}
    assert names(str(nightly.pk)) == {"nightly export"}
    assert names(str(uuid.uuid4())) == set()
    assert names("no such thing") == set()


def test_unfiltered_list_of_a_large_table_uses_the_row_estimate(operator, owner, rf, monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("the row estimate is PostgreSQL's")
    make_job(owner)
    make_job(owner)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    make_job(owner)  # not in the statistics yet
    monkeypatch.setattr(pagination, "ESTIMATE_COUNT_ABOVE", 0)

    unfiltered = pagination.JobPaginator(Job.objects.all(), 50)
    filtered = pagination.JobPaginator(Job.objects.filter(status=JobStatus.PENDING), 50)

    assert unfiltered.count == 2  # the estimate, no COUNT(*)
    assert filtered.count == 3


# --- actions ------------------------------------------------------------------------------------


def test_cancel_action(operator_client, operator, owner):
    pending = make_job(owner, JobStatus.PENDING, name="waiting")
    other_pending = make_job(owner, JobStatus.PENDING, name="waiting too")
    running = make_job(owner, JobStatus.RUNNING, name="busy")
    done = make_job(owner, JobStatus.SUCCEEDED, name="done")

    response = run_action(operator_client, "cancel", [pending, other_pending, running, done])

    assert response.status_code == 200
    shown = messages_of(response)
    assert "2 jobs cancelled." in shown
    assert any(text.startswith("Cancel requested for 1 running job") for text in shown)
    assert f"1 job could not be cancelled: Cannot cancel job {done.pk}: it already succeeded." in shown
    pending.refresh_from_db()
    running.refresh_from_db()
    done.refresh_from_db()
    assert pending.status == JobStatus.REVOKED and pending.cancelled_by == operator
    assert running.status == JobStatus.RUNNING and running.cancel_requested_at is not None
    assert done.status == JobStatus.SUCCEEDED
    revoked_event = pending.events.get(kind=JobEventKind.REVOKED)
    assert revoked_event.actor == operator
    assert (revoked_event.from_status, revoked_event.to_status) == (
        "pending",
        "revoked",
    )


def test_cancel_action_singular_messages(operator_client, owner):
    pending = make_job(owner, JobStatus.PENDING)
    failed = make_job(owner, JobStatus.FAILED)

    shown = messages_of(run_action(operator_client, "cancel", [pending, failed]))

    assert "1 job cancelled." in shown
    assert any(text.startswith("1 job could not be cancelled: ") and "it already failed" in text for text in shown)


def test_retry_action(operator_client, operator, owner):
    failed = make_job(owner, JobStatus.FAILED, error="boom", traceback="Traceback ...", attempts=1)
    revoked = make_job(owner, JobStatus.REVOKED)
    pending = make_job(owner, JobStatus.PENDING)

    shown = messages_of(run_action(operator_client, "retry", [failed, revoked, pending]))

    assert "2 jobs queued again." in shown
    assert f"1 job could not be retried: Cannot retry job {pending.pk}: it is pending." in shown
    failed.refresh_from_db()
    revoked.refresh_from_db()
    assert failed.status == JobStatus.PENDING and failed.attempts == 2 and failed.error == ""
    assert revoked.status == JobStatus.PENDING and revoked.attempts == 1
    event = failed.events.get(kind=JobEventKind.RETRIED)
    assert event.actor == operator and event.data["previous_error"] == "boom"


def test_delete_action_confirms_and_leaves_active_jobs_out(operator_client, operator, owner):
    done = make_job(owner, JobStatus.SUCCEEDED, name="done")
    failed = make_job(owner, JobStatus.FAILED, name="broken")
    running = make_job(owner, JobStatus.RUNNING, name="busy")

    confirm = operator_client.post(
        CHANGELIST,
        {
            "action": "delete_selected",
            "_selected_action": [done.pk, failed.pk, running.pk],
        },
    )

    assert confirm.status_code == 200
    assert "admin/delete_selected_confirmation.html" in [t.name for t in confirm.templates]
    assert {job.pk for job in confirm.context["queryset"]} == {done.pk, failed.pk}
    assert any("1 selected job is still active and will not be deleted" in m for m in messages_of(confirm))
    assert Job.objects.count() == 3  # nothing deleted before confirming

    response = run_action(operator_client, "delete_selected", [done, failed], post="yes")

    assert "2 jobs deleted." in messages_of(response)
    assert set(Job.objects.values_list("pk", flat=True)) == {running.pk}
    assert not JobEvent.objects.filter(job_id__in=[done.pk, failed.pk]).exists()
    logged = LogEntry.objects.filter(action_flag=DELETION, user=operator)
    assert {entry.object_id for entry in logged} == {str(done.pk), str(failed.pk)}


def test_delete_action_refuses_active_jobs(operator_client, owner):
    running = make_job(owner, JobStatus.RUNNING, name="busy")
    pending = make_job(owner, JobStatus.PENDING, name="waiting")
    done = make_job(owner, JobStatus.SUCCEEDED, name="done")

    # Only active jobs selected: no confirmation page, a message saying to cancel first.
    response = run_action(operator_client, "delete_selected", [running, pending])
    assert response.redirect_chain and response.request["PATH_INFO"] == CHANGELIST
    assert any("2 selected jobs are still active" in m and "cancel them first" in m for m in messages_of(response))

    # A confirmed deletion (say a job started after the confirmation page): the service refuses it.
    response = run_action(operator_client, "delete_selected", [running, done], post="yes")
    shown = messages_of(response)
    assert "1 job deleted." in shown
    assert f"1 job could not be deleted: Job {running.pk} is running: cancel it first, then delete it." in shown
    assert set(Job.objects.values_list("pk", flat=True)) == {running.pk, pending.pk}
    assert not LogEntry.objects.filter(action_flag=DELETION, object_id=str(running.pk)).exists()


# --- the job page -------------------------------------------------------------------------------


def test_job_page_is_read_only_and_shows_input_outcome_and_timeline(operator_client, operator, owner):
    job = make_job(
        owner,
        JobStatus.FAILED,
        name="import customers",
        args=[1, "two"],
        kwargs={"path": "/data/customers.csv", "dry_run": True},
        result={"imported": 0},
        error="ValueError: bad row 7",
        traceback='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad row 7',
    )
    JobEvent.objects.create(
        job=job,
        kind=JobEventKind.STARTED,
        from_status="pending",
        to_status="running",
        actor_label="worker w1",
    )
    JobEvent.objects.create(
        job=job,
        kind=JobEventKind.FAILED,
        from_status="running",
        to_status="failed",
        actor_label="worker w1",
        message="ValueError: bad row 7",
    )

    response = operator_client.get(change_url(job))

    assert response.status_code == 200
    html = response.content.decode()
    assert '<pre class="job-pre job-pre--json">{\n  &quot;path&quot;: &quot;/data/customers.csv&quot;' in html
    assert '<pre class="job-pre job-pre--json">[\n  1,\n  &quot;two&quot;\n]</pre>' in html
    assert "&quot;imported&quot;: 0" in html
    assert '<pre class="job-pre job-pre--traceback">Traceback (most recent call last):' in html
    assert "job-badge--failed" in html
    # The timeline, oldest first, with who and the status change.
    assert html.index("Created") < html.index("Started") < html.index("running → failed")
    assert "pending → running" in html and "worker w1" in html and "user alice" in html
    # Read-only: no save buttons; Retry (not Cancel) offered; Delete allowed for a finished job.
    assert 'name="_save"' not in html
    assert '<li data-job-operation="retry">' in html and '<li data-job-operation="cancel" hidden>' in html
    assert f"/admin/jobs/job/{job.pk}/delete/" in html
    # A forged save changes nothing.
    assert operator_client.post(change_url(job), {"name": "renamed", "status": "succeeded"}).status_code == 403
    job.refresh_from_db()
    assert (job.name, job.status) == ("import customers", JobStatus.FAILED)


def test_job_page_of_an_active_job_offers_cancel_and_no_delete(operator_client, owner):
    job = make_job(owner, JobStatus.RUNNING, progress=55, progress_meta={"message": "halfway"})

    html = operator_client.get(change_url(job)).content.decode()

    assert '<li data-job-operation="cancel">' in html and '<li data-job-operation="retry" hidden>' in html
    assert f"/admin/jobs/job/{job.pk}/delete/" not in html
    assert 'style="width: 55%"' in html and "halfway" in html


def test_cancel_and_retry_buttons(operator_client, operator, owner):
    job = make_job(owner, JobStatus.PENDING, name="nightly")

    response = operator_client.post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)

    assert response.redirect_chain[-1][0] == change_url(job)
    assert "Job “nightly” cancelled." in messages_of(response)
    job.refresh_from_db()
    assert job.status == JobStatus.REVOKED and job.cancelled_by == operator

    response = operator_client.post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)
    assert f"Cannot cancel job {job.pk}: it already revoked." in messages_of(response)

    response = operator_client.post(f"/admin/jobs/job/{job.pk}/retry/", follow=True)
    assert "Job “nightly” queued again (attempt 2)." in messages_of(response)  # attempts count from 1
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING and job.attempts == 1

    response = operator_client.post(f"/admin/jobs/job/{job.pk}/retry/", follow=True)
    assert f"Cannot retry job {job.pk}: it is pending." in messages_of(response)


def test_cancel_button_on_a_running_job_requests_a_stop(operator_client, owner):
    job = make_job(owner, JobStatus.RUNNING, name="busy")

    response = operator_client.post(f"/admin/jobs/job/{job.pk}/cancel/", follow=True)

    assert any(m.startswith("Cancel requested for job “busy”") for m in messages_of(response))
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.cancel_requested_at is not None
    assert "job-badge--cancelling" in response.content.decode()


def test_operation_views_need_post_and_an_existing_job(operator_client, owner):
    job = make_job(owner)

    assert operator_client.get(f"/admin/jobs/job/{job.pk}/cancel/").status_code == 405
    assert operator_client.post(f"/admin/jobs/job/{uuid.uuid4()}/cancel/").status_code == 404
    assert operator_client.post("/admin/jobs/job/not-a-uuid/retry/").status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_delete_button_goes_through_the_service(operator_client, operator, owner):
    active = make_job(owner, JobStatus.RUNNING, name="busy")
    done = make_job(owner, JobStatus.SUCCEEDED, name="done")

    refused = operator_client.get(f"/admin/jobs/job/{active.pk}/delete/", follow=True)
    assert refused.redirect_chain[-1][0] == change_url(active)
    assert "Job “busy” is running: cancel it first, then delete it." in messages_of(refused)
    assert Job.objects.filter(pk=active.pk).exists()

    confirm = operator_client.get(f"/admin/jobs/job/{done.pk}/delete/")
    assert confirm.status_code == 200 and not confirm.context["perms_lacking"]
    response = operator_client.post(f"/admin/jobs/job/{done.pk}/delete/", {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == CHANGELIST
    assert not Job.objects.filter(pk=done.pk).exists()
    assert LogEntry.objects.filter(action_flag=DELETION, object_id=str(done.pk), user=operator).exists()


# --- who may do what ----------------------------------------------------------------------------


@pytest.mark.parametrize("is_logged_in", [False, True])
def test_non_staff_are_sent_to_the_login_page(owner, is_logged_in):
    job = make_job(owner)
    client = Client()
    if is_logged_in:
        client.force_login(owner)  # a normal user, not staff

    for url in (CHANGELIST, change_url(job)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/?next=")

    response = client.post(f"/admin/jobs/job/{job.pk}/cancel/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    response = client.post(CHANGELIST, {"action": "cancel", "_selected_action": [job.pk]})
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


def test_staff_with_view_permission_only_cannot_operate(owner):
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_job"))
    client = Client()
    client.force_login(viewer)
    job = make_job(owner)

    response = client.get(CHANGELIST)
    assert response.status_code == 200
    assert "action_form" not in response.context or response.context["action_form"] is None
    assert "Cancel job" not in client.get(change_url(job)).content.decode()
    assert client.post(f"/admin/jobs/job/{job.pk}/cancel/").status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING


# --- the rest of the admin ----------------------------------------------------------------------


def test_job_events_are_listed_read_only(operator_client, owner):
    job = make_job(owner, JobStatus.PENDING, name="nightly")
    event = job.events.get()

    response = operator_client.get("/admin/jobs/jobevent/")
    assert response.status_code == 200
    html = response.content.decode()
    assert f'href="/admin/jobs/job/{job.pk}/change/">nightly</a>' in html
    assert "∅ → pending" in html
    found = operator_client.get("/admin/jobs/jobevent/", {"q": str(job.pk)}).context["cl"].result_list
    assert list(found) == [event]

    assert operator_client.get("/admin/jobs/jobevent/add/").status_code == 403
    page = operator_client.get(f"/admin/jobs/jobevent/{event.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert operator_client.get(f"/admin/jobs/jobevent/{event.pk}/delete/").status_code == 403


def test_schedules_and_results_admins_are_registered(operator_client):
    index = operator_client.get("/admin/").content.decode()

    for name in (
        "Periodic tasks",
        "Crontabs",
        "Intervals",
        "Task results",
        "Jobs",
        "Job events",
    ):
        assert name in index
    for url in (
        "/admin/django_celery_beat/periodictask/",
        "/admin/django_celery_beat/crontabschedule/",
        "/admin/django_celery_beat/intervalschedule/",
        "/admin/django_celery_results/taskresult/",
        "/admin/django_celery_results/groupresult/",
    ):
        assert operator_client.get(url).status_code == 200, url


def test_the_events_list_says_where_a_jobs_ordinary_lines_are(operator_client, owner):
    """A job's created / started / succeeded lines are read from its row (jobs/timeline.py), not stored:
    the list of stored lines says so and points at the job's page and the API, or an operator filtering
    by "started" here would take an empty answer for jobs that never ran."""
    html = operator_client.get("/admin/jobs/jobevent/").content.decode()
    assert "derived from each job" in html
    assert "/api/v1/jobs/{id}/events/" in html
