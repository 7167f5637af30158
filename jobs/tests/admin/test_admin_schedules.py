"""The schedule page (jobs/admin/schedules/): taskhub's own add/change page for periodic tasks,
saved through the schedules API's services; its preview view; the schedule list.

The real beat firing a schedule made on this page is in schedules/test_schedules_beat.py.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from accounts.tests.factories import UserFactory
from jobs.catalog import catalog
from jobs.models import Job, JobSchedule
from jobs.schedules.checks import system_tasks
from jobs.schedules.firing import job_schedule_fire
from jobs.schedules.services import job_schedule_create
from jobs.tests.factories import LONG_RUNNING_TASK
from taskhub.testing.admin import client_for

pytestmark = pytest.mark.django_db

LIST = "/admin/django_celery_beat/periodictask/"
ADD = f"{LIST}add/"
PREVIEW = f"{LIST}preview/"
SWEEP = "jobs.tasks.maintenance_tasks.dispatch_jobs"


def change(periodic_task) -> str:
    return f"{LIST}{periodic_task.pk}/change/"


@pytest.fixture
def scheduler() -> Client:
    """Staff (not superuser) with the periodic task permissions."""
    staff = UserFactory(username="planner", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="django_celery_beat"))
    return client_for(staff)


def form_data(**changes) -> dict:
    data = {
        "name": "admin schedule",
        "task": LONG_RUNNING_TASK,
        "args": "[]",
        "kwargs": '{"seconds": 0}',
        "owner": "",
        "job_priority": "",
        "enabled": "on",
        "timing": "interval",
        "every": "2",
        "period": "minutes",
        "minute": "*",
        "hour": "*",
        "day_of_month": "*",
        "month_of_year": "*",
        "day_of_week": "*",
        "timezone": "UTC",
        "start_time": "",
        "expires": "",
        "description": "",
    }
    return {**data, **changes}


def errors_of(response) -> dict[str, list[str]]:
    assert response.status_code == 200, response.status_code  # the form again, with its errors
    return {field: [str(error) for error in errors] for field, errors in response.context["form"].errors.items()}


def rows() -> tuple[int, ...]:
    return (
        PeriodicTask.objects.count(),
        JobSchedule.objects.count(),
        IntervalSchedule.objects.count(),
        CrontabSchedule.objects.count(),
    )


# --- The page -------------------------------------------------------------------------------


def test_the_page_offers_catalog_tasks_with_their_parameters_and_no_stock_widgets(scheduler):
    response = scheduler.get(ADD)

    assert response.status_code == 200
    html = response.content.decode()
    groups = response.context["form"].fields["task"].widget.choices[1:]
    offered = [value for _group, choices in groups for value, _label in choices]
    assert offered == [entry.name for entry in catalog.entries()]
    assert not set(offered) & set(system_tasks())  # internal tasks: not for this staff member
    assert '<code class="job-param__name">seconds</code>' in html
    assert "integer, 0 to 14400, default 10" in html  # the submit page's table, one phrasing
    # The timing inline: an interval or the five crontab fields and a zone; no pop-ups.
    for name in ("every", "period", "minute", "hour", "day_of_month", "month_of_year", "day_of_week", "timezone"):
        assert f'name="{name}"' in html
    assert "Translation" not in html and "related-widget-wrapper" not in html and 'name="regtask"' not in html
    assert 'id="schedule-preview"' in html and "every 15 minutes; next: " in html  # the initial timing, previewed


def test_superusers_are_offered_the_maintenance_tasks(operator_client):
    choices = operator_client.get(ADD).context["form"].fields["task"].widget.choices
    offered = {value for _group, group_choices in choices[1:] for value, _label in group_choices}
    assert set(system_tasks()) <= offered and SWEEP in offered


def test_an_interval_schedule_is_saved_owned_by_whoever_saves_it(operator_client, operator):
    response = operator_client.post(ADD, form_data(task="app.tasks.common_tasks.long_running_task", job_priority="low"))

    assert response.status_code == 302, errors_of(response)
    periodic_task = PeriodicTask.objects.get(name=f"user:{operator.pk}:admin schedule")
    assert periodic_task.task == LONG_RUNNING_TASK  # the alias, stored as the canonical name
    assert (periodic_task.interval.every, periodic_task.interval.period) == (2, "minutes")
    assert periodic_task.kwargs == '{"seconds": 0}'
    assert (periodic_task.job_schedule.owner, periodic_task.job_schedule.priority) == (operator, "low")


def test_a_crontab_schedule_is_saved_with_its_zone(scheduler):
    data = form_data(timing="crontab", minute="*/15", hour="9-17", day_of_week="mon-fri", timezone="Europe/Paris")
    response = scheduler.post(ADD, data)

    assert response.status_code == 302, errors_of(response)
    periodic_task = PeriodicTask.objects.get()
    crontab = periodic_task.crontab
    assert periodic_task.interval is None
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "*/15",
        "9-17",
        "mon-fri",
        "Europe/Paris",
    )
    assert periodic_task.job_schedule.owner.username == "planner"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"timing": "crontab", "minute": "61"}, "minute", "crontab.minute"),
        ({"timing": "crontab", "day_of_week": "someday"}, "day_of_week", "crontab.day_of_week"),
        ({"timing": "crontab", "timezone": "Mars/Olympus"}, "timezone", "Unknown time zone 'Mars/Olympus'"),
        ({"every": "0"}, "every", "interval.every: Must be a whole number, at least 1."),
        ({"every": ""}, "every", "interval.every"),
        ({"kwargs": '{"seconds": "soon"}'}, "kwargs", "kwargs.seconds: parameter 'seconds' must be an integer"),
        ({"kwargs": '{"bogus": 1}'}, "kwargs", "kwargs.bogus: parameter 'bogus' must be a string, got int 1"),
        ({"kwargs": "{seconds: 1"}, "kwargs", "Enter a valid JSON."),
        ({"args": "[1, 2]"}, "args", "positional"),
        ({"task": "os.system"}, "task", "not a task in the catalog"),
        ({"task": SWEEP, "kwargs": "{}"}, "task", "only superusers may schedule it"),  # forced into the POST
        ({"name": ""}, "name", "This field is required."),
        ({"name": "taskhub-rollup-metrics"}, "name", "reserved"),
        ({"start_time": "2026-12-07T10:00", "expires": "2026-12-07T09:00"}, "expires", "later than start_time"),
    ],
)
def test_bad_input_is_shown_next_to_its_field_and_nothing_is_saved(scheduler, changes, field, words):
    before = rows()
    errors = errors_of(scheduler.post(ADD, form_data(**changes)))

    assert any(words in message for message in errors.get(field, [])), errors
    assert rows() == before


def test_a_schedule_for_a_user_who_is_not_staff_keeps_their_minimum_interval(operator_client, user):
    errors = errors_of(operator_client.post(ADD, form_data(owner=user.pk, every="10", period="seconds")))
    assert errors["every"] == [
        "interval: Must be at least 60 seconds (JOB_SCHEDULE_MIN_INTERVAL_SECONDS); got 10 seconds."
    ], errors
    assert not PeriodicTask.objects.exists()


def test_only_superusers_schedule_jobs_for_someone_else(scheduler, user):
    errors = errors_of(scheduler.post(ADD, form_data(owner=user.pk)))
    assert errors["owner"] == ["Only superusers may schedule jobs for another user."]
    assert not PeriodicTask.objects.exists()


def test_superusers_schedule_a_maintenance_task_as_beats_own_entry(operator_client):
    response = operator_client.post(ADD, form_data(name="extra sweep", task=SWEEP, kwargs="{}", every="5"))

    assert response.status_code == 302, errors_of(response)
    entry = PeriodicTask.objects.get(name="extra sweep")
    assert (entry.task, entry.interval.every) == (SWEEP, 5)
    assert not JobSchedule.objects.exists()  # not a job schedule: beat sends it as a Celery task


def test_beats_own_entries_are_read_only_for_other_staff(scheduler, operator_client):
    operator_client.post(ADD, form_data(name="extra sweep", task=SWEEP, kwargs="{}"))
    entry = PeriodicTask.objects.get(name="extra sweep")

    page = scheduler.get(change(entry))
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert scheduler.post(change(entry), form_data(name="mine now", task=SWEEP, kwargs="{}")).status_code == 403
    assert PeriodicTask.objects.get(pk=entry.pk).name == "extra sweep"

    response = operator_client.post(change(entry), form_data(name="extra sweep", task=SWEEP, kwargs="{}", every="7"))
    assert response.status_code == 302, errors_of(response)
    assert PeriodicTask.objects.get(pk=entry.pk).interval.every == 7  # superusers change it


def test_a_catalog_task_without_an_owner_is_adopted_when_saved(operator_client, operator):
    interval = IntervalSchedule.objects.create(every=5, period="minutes")
    legacy = PeriodicTask.objects.create(name="legacy", task=LONG_RUNNING_TASK, interval=interval, kwargs="{}")

    errors = errors_of(operator_client.post(change(legacy), form_data(name="legacy", kwargs='{"seconds": "x"}')))
    assert "kwargs" in errors and not JobSchedule.objects.exists()  # refused: not adopted either

    response = operator_client.post(change(legacy), form_data(name="legacy", every="5"))
    assert response.status_code == 302, errors_of(response)
    stored = PeriodicTask.objects.get(pk=legacy.pk)
    assert (stored.job_schedule.owner, stored.name) == (operator, f"user:{operator.pk}:legacy")


# --- Preview --------------------------------------------------------------------------------


def test_the_preview_view_reads_the_timing_being_typed(scheduler):
    fields = form_data(timing="crontab", minute="*/15", day_of_week="1-5", timezone="Europe/Paris")
    body = scheduler.get(PREVIEW, fields).json()

    assert body["text"].startswith("every 15 minutes on weekdays, Europe/Paris; next: ")
    runs = [datetime.fromisoformat(run) for run in body["next"]]
    assert len(runs) == 3 and runs[1] - runs[0] == timedelta(minutes=15) and runs[0] > timezone.now()
    assert all(run.weekday() < 5 for run in runs)

    body = scheduler.get(PREVIEW, form_data(every="3", period="hours")).json()
    assert body["text"].startswith("every 3 hours; next: ")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"timing": "crontab", "hour": "25"}, "hour"),
        ({"timing": "crontab", "timezone": "Nowhere"}, "timezone"),
        ({"every": "0"}, "every"),
        ({"every": "x"}, "every"),
        ({"timing": "weekly"}, "timing"),
    ],
)
def test_the_preview_of_a_bad_timing_names_the_field(scheduler, changes, field):
    response = scheduler.get(PREVIEW, form_data(**changes))
    assert response.status_code == 400
    assert list(response.json()["errors"]) == [field]


def test_the_preview_needs_the_admin(client, user):
    assert client.get(PREVIEW).status_code == 302  # to the login page
    client.force_login(user)  # not staff
    assert client.get(PREVIEW).status_code == 302


# --- A stored schedule ----------------------------------------------------------------------


@pytest.fixture
def schedule(operator) -> PeriodicTask:
    return job_schedule_create(
        owner=operator,
        name="reports",
        task=LONG_RUNNING_TASK,
        kwargs={"seconds": 0},
        crontab={"minute": "0", "hour": "9", "day_of_week": "mon-fri", "timezone": "Europe/Paris"},
    )


def test_the_page_shows_the_schedule_its_preview_and_its_recent_runs(operator_client, schedule):
    fired = job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=datetime(2026, 3, 2, 7, 0, tzinfo=UTC)).job
    started = timezone.now() - timedelta(seconds=42)
    Job.objects.filter(pk=fired.pk).update(status="succeeded", started_at=started, finished_at=timezone.now())

    response = operator_client.get(change(schedule))

    html = response.content.decode()
    form = response.context["form"]
    assert form["name"].value() == "reports" and form["timing"].value() == "crontab"
    assert form["timezone"].value() == "Europe/Paris" and form["hour"].value() == "9"
    assert "every day" not in html and "at 09:00 on weekdays, Europe/Paris; next: " in html
    assert f'href="/admin/jobs/job/{fired.pk}/change/"' in html
    assert "job-badge--succeeded" in html and "42s" in html
    assert f"?schedule__exact={schedule.pk}" in html


def test_a_change_goes_through_the_service_and_keeps_the_name(operator_client, schedule, operator):
    data = form_data(name="reports", timing="interval", every="1", period="hours", kwargs='{"seconds": 5}')
    response = operator_client.post(change(schedule), data)

    assert response.status_code == 302, errors_of(response)
    stored = PeriodicTask.objects.get(pk=schedule.pk)
    assert stored.name == f"user:{operator.pk}:reports"  # not prefixed twice
    assert (stored.crontab, stored.interval.every, stored.interval.period) == (None, 1, "hours")
    assert stored.kwargs == '{"seconds": 5}'

    errors = errors_of(operator_client.post(change(schedule), {**data, "kwargs": '{"seconds": -1}'}))
    assert any("must be at least 0" in message for message in errors["kwargs"]), errors
    assert PeriodicTask.objects.get(pk=schedule.pk).kwargs == '{"seconds": 5}'


def test_the_list_shows_timing_next_run_and_last_run(operator_client, schedule, user):
    job_schedule_create(owner=user, name="reports", task=LONG_RUNNING_TASK, interval={"every": 5, "period": "minutes"})
    fired = job_schedule_fire(periodic_task_id=schedule.pk, last_run_at=datetime(2026, 3, 2, 7, 0, tzinfo=UTC)).job

    response = operator_client.get(LIST)

    assert response.status_code == 200 and response.context["wrong_scheduler"] is False
    html = response.content.decode()
    assert "at 09:00 on weekdays, Europe/Paris" in html and "every 5 minutes" in html
    assert f'href="/admin/jobs/job/{fired.pk}/change/"' in html and "job-badge--pending" in html
    assert "no job yet" in html  # the other schedule
    assert html.count('class="job-when"') >= 3  # next runs and the last run's time
    assert ">reports</a>" in html and ":reports<" not in html  # names as their owners gave them
    assert user.username in html


def test_the_run_action_creates_tracked_jobs(operator_client, schedule, published, django_capture_on_commit_callbacks):
    data = {"action": "run_tasks", "_selected_action": [schedule.pk]}
    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(LIST, data, follow=True)

    job = Job.objects.get(schedule=schedule)
    assert [str(message) for message in response.context["messages"]] == ["1 job created."]
    assert [message["id"] for message in published] == [str(job.id)]
