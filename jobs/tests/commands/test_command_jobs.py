"""manage.py jobs list | show | cancel | retry | delete: the API's selectors and services from the
command line. As --user U: U's jobs under the API's rules (another user's job is not found); without
it: the operator, every job. Bad input is exit status 2 and writes nothing; a job refused (not
found, conflict) is exit status 1 with one line naming the job and why."""

import io
import json
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobEventKind, JobStatus
from jobs.serializers import JobEventSerializer, JobSerializer
from jobs.services.creation import job_create
from jobs.tests.factories import kinds, make, snapshot
from taskhub.testing import child_database_url


def jobs(*args: str) -> str:
    out = io.StringIO()
    call_command("jobs", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def refused(*args: str, returncode: int) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("jobs", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == returncode, caught.value
    return str(caught.value)


# --- list ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_every_job_newest_first_to_the_operator(user, other_user):
    old, new = make("succeeded", owner=user), make("running", owner=other_user, priority="high")
    lines = jobs("list").splitlines()
    assert lines[0].split()[:4] == ["id", "status", "progress", "task"]
    assert [line.split()[0] for line in lines[1:]] == [str(new.id), str(old.id)]
    assert lines[1].split()[1:5] == ["running", "0%", "long_running_task", "high_priority"]
    assert other_user.username in lines[1] and user.username in lines[2]


@pytest.mark.django_db
def test_list_filters_by_status_task_queue_and_user_and_limits(user, other_user):
    mine = make("failed", owner=user)
    make("failed", owner=other_user)
    make("pending", owner=user)
    make("failed", owner=user, celery_task_name="jobs.tasks.common_tasks.process_data")
    listed = jobs("list", "--status", "failed", "--task", "long_running_task", "--user", user.username, "--json")
    assert [job["id"] for job in json.loads(listed)] == [str(mine.id)]
    assert json.loads(listed)[0] == json.loads(json.dumps(JobSerializer(Job.objects.get(id=mine.id)).data))
    assert len(json.loads(jobs("list", "--queue", "default", "--json"))) == 4
    assert json.loads(jobs("list", "--queue", "high_priority", "--json")) == []
    assert len(json.loads(jobs("list", "--limit", "2", "--json"))) == 2
    assert jobs("list", "--status", "running") == "No jobs.\n"


@pytest.mark.django_db
def test_list_as_a_user_shows_only_that_users_jobs(user, other_user):
    make(owner=other_user)
    assert jobs("list", "--user", user.username, "--json") == "[]\n"


LIST_BAD_INPUT = [
    (["--status", "runing"], "--status: 'runing' is not a status. Did you mean 'running'? (pending, running,"),
    (["--task", "long_runing_task"], "--task: unknown task 'long_runing_task'. Did you mean 'long_running_task'?"),
    (["--task", "zzzz"], "--task: unknown task 'zzzz'. `manage.py tasks` lists them."),
    (["--queue", "defualt"], "--queue: 'defualt' is not a queue. Did you mean 'default'?"),
    (["--user", "alcie"], "--user: no user named 'alcie'. Did you mean 'alice'?"),
    (["--limit", "0"], "--limit: '0' is not a whole number from 1 to 1000."),
    (["--limit", "many"], "--limit: 'many' is not a whole number from 1 to 1000."),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), LIST_BAD_INPUT, ids=[a[0][0] + a[0][1] for a in LIST_BAD_INPUT])
def test_list_bad_input_exits_2_with_a_suggestion(args, message):
    UserFactory(username="alice")
    error = refused("list", *args, returncode=2)
    assert error.startswith(message), error


# --- show ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_show_prints_the_row_its_timeline_and_its_last_error(user):
    job = job_create(owner=user, celery_task_name="long_running_task", args=[3])
    Job.objects.filter(id=job.id).update(status=JobStatus.FAILED, error="ValueError: bad record 7")
    text = jobs("show", str(job.id))
    assert f"Job {job.id}" in text
    assert "status      failed" in text and f"owner       {user.username}" in text
    assert "task        jobs.tasks.common_tasks.long_running_task" in text
    assert "Timeline" in text and "created" in text
    assert "Last error:\n  ValueError: bad record 7" in text


@pytest.mark.django_db
def test_show_prints_the_concurrency_key_and_its_wait(user):
    job = job_create(owner=user, celery_task_name="long_running_task", concurrency={"key": "tenant-7", "limit": 2})
    assert "concurrency key tenant-7, at most 2 at once\n" in jobs("show", str(job.id))
    Job.objects.filter(id=job.id).update(concurrency_waiting_since=job.created_at)
    assert "at most 2 at once (waiting: the key is at its limit)" in jobs("show", str(job.id))
    plain = job_create(owner=user, celery_task_name="long_running_task")
    assert "concurrency" not in jobs("show", str(plain.id))


@pytest.mark.django_db
def test_show_json_is_the_apis_job_and_events(user):
    job = job_create(owner=user, celery_task_name="long_running_task", args=[3])
    document = json.loads(jobs("show", str(job.id), "--json"))
    assert document["job"] == json.loads(json.dumps(JobSerializer(Job.objects.get(id=job.id)).data))
    assert [event["kind"] for event in document["events"]] == ["created"]
    assert list(document["events"][0]) == list(JobEventSerializer.Meta.fields)


@pytest.mark.django_db
def test_show_another_users_job_as_a_user_is_not_found(user, other_user):
    job = make(owner=other_user)
    assert refused("show", str(job.id), "--user", user.username, returncode=1) == f"Job {job.id}: not found."
    assert refused("show", str(uuid.UUID(int=7)), returncode=1) == f"Job {uuid.UUID(int=7)}: not found."


@pytest.mark.django_db
def test_show_refuses_a_malformed_id():
    assert refused("show", "12345", returncode=2) == "ID: '12345' is not a job id (a UUID)."


# --- cancel, retry, delete -----------------------------------------------------------------------


@pytest.mark.django_db
def test_cancel_retry_and_delete_go_through_the_services(user, django_capture_on_commit_callbacks):
    pending, running = make(owner=user), make("running", owner=user)
    out = jobs("cancel", str(pending.id), str(running.id))
    assert out.splitlines() == [
        f"Job {pending.id}: revoked (it had not started).",
        f"Job {running.id}: cancel requested (it stops at its next progress report).",
    ]
    assert kinds(pending) == ["created", JobEventKind.REVOKED]
    assert kinds(running) == ["created", "started", JobEventKind.CANCEL_REQUESTED]
    with django_capture_on_commit_callbacks(execute=True):
        assert jobs("retry", str(pending.id)) == f"Job {pending.id}: retried; pending again (attempt 2).\n"
    assert Job.objects.get(id=pending.id).status == JobStatus.PENDING
    done = make("succeeded", owner=user)
    assert jobs("delete", str(done.id)) == f"Job {done.id}: deleted.\n"
    assert not Job.objects.filter(id=done.id).exists()


@pytest.mark.django_db
def test_cancel_as_a_user_records_who_and_json_is_the_apis_job(user):
    job = make(owner=user)
    document = json.loads(jobs("cancel", str(job.id), "--user", user.username, "--json"))
    assert [entry["id"] for entry in document] == [str(job.id)]
    assert document[0]["status"] == "revoked" and document[0]["cancelled_by"] == user.username


@pytest.mark.django_db
def test_an_illegal_transition_exits_1_naming_the_job_and_why_and_changes_nothing(user):
    done = make("succeeded", owner=user)
    before, lines = snapshot(done), kinds(done)  # the lines its row derives
    assert refused("cancel", str(done.id), returncode=1) == (
        f"Cannot cancel job {done.id}: conflict: it already succeeded."
    )
    assert refused("retry", str(done.id), returncode=1) == f"Cannot retry job {done.id}: conflict: it is succeeded."
    running = make("running", owner=user)
    assert refused("delete", str(running.id), returncode=1) == (
        f"Cannot delete job {running.id}: conflict: it is running: cancel it first, then delete it."
    )
    assert snapshot(done) == before and kinds(done) == lines


@pytest.mark.django_db
def test_several_ids_act_on_each_and_exit_1_naming_the_ones_refused(user):
    pending, done, missing = make(owner=user), make("succeeded", owner=user), uuid.uuid4()
    with pytest.raises(CommandError) as caught:
        call_command("jobs", "cancel", str(pending.id), str(done.id), str(missing), stdout=io.StringIO())
    assert caught.value.returncode == 1
    assert str(caught.value).splitlines() == [
        f"Cannot cancel job {done.id}: conflict: it already succeeded.",
        f"Cannot cancel job {missing}: not found.",
    ]
    assert Job.objects.get(id=pending.id).status == JobStatus.REVOKED


@pytest.mark.django_db
def test_as_a_user_another_users_job_is_not_found_and_untouched(user, other_user):
    theirs = make("failed", owner=other_user)
    before = snapshot(theirs)
    for verb in ("cancel", "retry", "delete"):
        error = refused(verb, str(theirs.id), "--user", user.username, returncode=1)
        assert error == f"Cannot {verb} job {theirs.id}: not found."
    assert snapshot(theirs) == before


@pytest.mark.django_db
def test_as_staff_another_users_job_needs_the_apis_permission(other_user):
    staff = UserFactory(is_staff=True)
    theirs = make("failed", owner=other_user)
    # Without jobs.view_job staff do not even see it (the API's rule), as for anyone.
    assert refused("retry", str(theirs.id), "--user", staff.username, returncode=1) == (
        f"Cannot retry job {theirs.id}: not found."
    )
    staff.user_permissions.add(Permission.objects.get(codename="view_job"))
    staff = type(staff).objects.get(pk=staff.pk)  # permissions are cached on the instance
    error = refused("retry", str(theirs.id), "--user", staff.username, returncode=1)
    assert error == (
        f"Cannot retry job {theirs.id}: not allowed: you may not retry another user's job: "
        "that needs the jobs.change_job permission."
    )
    staff.user_permissions.add(Permission.objects.get(codename="change_job"))
    staff = type(staff).objects.get(pk=staff.pk)  # permissions are cached on the instance
    assert "retried" in jobs("retry", str(theirs.id), "--user", staff.username)


@pytest.mark.django_db
def test_a_malformed_id_among_several_is_refused_before_anything_is_done(user):
    job = make(owner=user)
    error = refused("cancel", str(job.id), "not-a-uuid", returncode=2)
    assert error == "ID: 'not-a-uuid' is not a job id (a UUID)."
    assert Job.objects.get(id=job.id).status == JobStatus.PENDING and kinds(job) == ["created"]


@pytest.mark.django_db
def test_an_unknown_or_inactive_user_is_refused(user):
    UserFactory(username="gone", is_active=False)
    job = make(owner=user)
    assert refused("cancel", str(job.id), "--user", "nobody", returncode=2).startswith("--user: no user named 'nobody'")
    assert refused("cancel", str(job.id), "--user", "gone", returncode=2) == "--user: 'gone' is inactive."
    assert kinds(job) == ["created"]


def test_a_missing_subcommand_or_id_is_a_usage_error():
    with pytest.raises(CommandError, match=r"list\|show\|cancel"):
        call_command("jobs", stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(CommandError, match="ID"):
        call_command("jobs", "cancel", stdout=io.StringIO(), stderr=io.StringIO())


def test_help_is_short_with_examples():
    parser = load_command_class("jobs", "jobs").create_parser("manage.py", "jobs")
    text = parser.format_help()
    assert "Examples:\n  manage.py jobs list --status failed" in text
    for verb in ("list", "show", "cancel", "retry", "delete"):
        assert f"manage.py jobs {verb}" in text


# --- as a real process ---------------------------------------------------------------------------


def run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": child_database_url()}
    command = [sys.executable, "manage.py", "jobs", *args]
    return subprocess.run(command, cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.django_db(transaction=True)
def test_as_a_real_process_exit_status_and_stderr_tell_the_outcome():
    owner = UserFactory()
    pending, done = make(owner=owner), make("succeeded", owner=owner)
    listed = run("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {job["id"] for job in json.loads(listed.stdout)} == {str(pending.id), str(done.id)}
    bad = run("list", "--status", "faild")
    assert bad.returncode == 2 and "--status: 'faild' is not a status. Did you mean 'failed'?" in bad.stderr
    conflict = run("cancel", str(done.id))
    assert conflict.returncode == 1, conflict.stderr
    assert f"Cannot cancel job {done.id}: conflict: it already succeeded." in conflict.stderr
    malformed = run("show", "nope")
    assert malformed.returncode == 2 and "ID: 'nope' is not a job id (a UUID)." in malformed.stderr
    good = run("cancel", str(pending.id))
    assert good.returncode == 0 and good.stdout == f"Job {pending.id}: revoked (it had not started).\n", good.stderr
    shown = run("show", str(pending.id))
    assert shown.returncode == 0 and "status      revoked" in shown.stdout
    usage = run()
    assert usage.returncode != 0 and "list" in usage.stderr


# --- retry with new arguments (edit and retry) ----------------------------------------------------


@pytest.mark.django_db
def test_retry_with_new_kwargs_and_priority_records_the_change(user, django_capture_on_commit_callbacks):
    failed = make("failed", owner=user, args=[], kwargs={"seconds": 3600})
    with django_capture_on_commit_callbacks(execute=True):
        out = jobs("retry", str(failed.id), "--kwargs", '{"seconds": 2}', "--priority", "high", "--user", user.username)
    assert out == f"Job {failed.id}: retried with new kwargs, priority; pending again (attempt 2).\n"
    job = Job.objects.get(id=failed.id)
    assert (job.status, job.kwargs, job.priority, job.queue) == ("pending", {"seconds": 2}, "high", "high_priority")
    line = job.events.filter(kind=JobEventKind.RETRIED).get()
    assert line.actor_id == user.pk
    assert line.data["changes"] == {
        "kwargs": {"before": {"seconds": 3600}, "after": {"seconds": 2}},
        "priority": {"before": "normal", "after": "high"},
    }


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--kwargs", '{"seconds": "many"}'], "--kwargs: "),
        (["--kwargs", "{seconds: 1}"], "--kwargs: not valid JSON"),
        (["--kwargs", "[1]"], "--kwargs: Must be a JSON object."),
        (["--args", '{"a": 1}'], "--args: Must be a JSON array."),
        (["--priority", "soon"], "--priority: "),
    ],
)
def test_retry_with_bad_new_values_is_bad_input_and_changes_nothing(user, options, words):
    failed = make("failed", owner=user, args=[], kwargs={"seconds": 3600})
    before = snapshot(failed)
    message = refused("retry", str(failed.id), *options, returncode=2)
    assert words in message, message
    assert snapshot(failed) == before and not failed.events.exists()


@pytest.mark.django_db
def test_new_values_go_with_one_job_only(user):
    first, second = make("failed", owner=user), make("failed", owner=user)
    message = refused("retry", str(first.id), str(second.id), "--kwargs", '{"seconds": 1}', returncode=2)
    assert "one job" in message, message
    assert Job.objects.filter(status="failed").count() == 2
