"""manage.py enqueue_job: the API's checks and service from the command line; bad input is exit status 2."""

import io
import json
import re

import pytest
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobStatus
from jobs.serializers import JobSerializer
from jobs.tests.factories import LONG_RUNNING_TASK, kinds

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def enqueue(*args: str, stdout=None, stderr=None) -> tuple[str, str]:
    out, err = stdout or io.StringIO(), stderr or io.StringIO()
    call_command("enqueue_job", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failure(*args: str, returncode: int) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("enqueue_job", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert caught.value.returncode == returncode, caught.value
    return str(caught.value)


# --- creating ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_creates_the_job_as_the_api_does_and_prints_its_id(user, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        out, _ = enqueue(
            "long_running_task",
            "--args",
            "[5]",
            "--kwargs",
            '{"label": "x"}',
            "--priority",
            "high",
            "--name",
            "from the shell",
            "--user",
            user.username,
        )
    job_id = out.strip()
    assert UUID.match(job_id), out
    job = Job.objects.get(id=job_id)
    assert (job.owner, job.name, job.celery_task_name, job.args, job.kwargs) == (
        user,
        "from the shell",
        LONG_RUNNING_TASK,
        [5],
        {"label": "x"},
    )
    assert (job.status, job.priority, job.queue) == (JobStatus.PENDING, "high", "high_priority")
    assert kinds(job) == ["created"]
    assert [(message["id"], message["routing_key"]) for message in published] == [(job_id, "high_priority")]
    assert job.dispatched_at is not None


@pytest.mark.django_db
def test_defaults_come_from_the_catalog(user):
    out, _ = enqueue(
        "send_notification", "--kwargs", json.dumps({"to": [user.email], "subject": "hi"}), "--user", user.username
    )
    job = Job.objects.get(id=out.strip())
    assert (job.name, job.priority, job.queue, job.max_retries) == ("send_notification", "urgent", "high_priority", 5)


@pytest.mark.django_db
def test_json_prints_the_job_with_the_api_fields(user):
    out, _ = enqueue("long_running_task", "--args", "[1]", "--user", user.username, "--json")
    document = json.loads(out)
    job = Job.objects.get(id=document["id"])
    assert list(document) == list(JobSerializer.Meta.fields)
    assert document == json.loads(json.dumps(JobSerializer(job).data))
    assert (document["status"], document["owner"]) == ("pending", user.username)


@pytest.mark.django_db
def test_the_same_idempotency_key_returns_the_same_job(user, published, django_capture_on_commit_callbacks):
    args = ("long_running_task", "--args", "[1]", "--user", user.username, "--idempotency-key", "nightly-2026-11-28")
    with django_capture_on_commit_callbacks(execute=True):
        first, _ = enqueue(*args)
    with django_capture_on_commit_callbacks(execute=True):
        second, _ = enqueue(*args)
    assert first == second and UUID.match(first.strip())
    assert Job.objects.count() == 1
    assert [message["id"] for message in published] == [first.strip()]  # sent once


@pytest.mark.django_db
def test_the_same_idempotency_key_with_another_request_is_refused(user, nothing_written):
    enqueue("long_running_task", "--args", "[1]", "--user", user.username, "--idempotency-key", "k1")
    with nothing_written():
        message = failure(
            "long_running_task", "--args", "[2]", "--user", user.username, "--idempotency-key", "k1", returncode=2
        )
    assert message == "This Idempotency-Key was already used with a different request body."


# --- the owner ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_user_the_only_superuser_owns_the_job():
    admin = UserFactory(is_superuser=True, is_staff=True)
    UserFactory(is_superuser=True, is_active=False)  # inactive: not a candidate
    out, _ = enqueue("long_running_task", "--args", "[1]")
    assert Job.objects.get(id=out.strip()).owner == admin


@pytest.mark.django_db
@pytest.mark.parametrize(("superusers", "why"), [(0, "there is no active superuser"), (2, "several active superusers")])
def test_without_user_and_not_exactly_one_superuser_user_is_required(superusers, why, nothing_written):
    UserFactory.create_batch(superusers, is_superuser=True, is_staff=True)
    with nothing_written():
        message = failure("long_running_task", returncode=2)
    assert message.startswith("--user: give the user who owns the job") and why in message


@pytest.mark.django_db
def test_an_unknown_or_inactive_user_is_refused(nothing_written):
    UserFactory(username="gone", is_active=False)
    with nothing_written():
        assert failure("long_running_task", "--user", "nobody", returncode=2) == "--user: no user named 'nobody'."
        assert failure("long_running_task", "--user", "gonne", returncode=2) == "--user: no user named 'gonne'."
        UserFactory(username="alice")
        message = failure("long_running_task", "--user", "alcie", returncode=2)
        assert message == "--user: no user named 'alcie'. Did you mean 'alice'?"
        assert failure("long_running_task", "--user", "gone", returncode=2) == "--user: 'gone' is inactive."


# --- bad input ---------------------------------------------------------------------------------------


BAD_INPUT = [
    (["no_such_task"], "TASK: unknown task 'no_such_task'. `manage.py tasks` lists them."),
    (["long_runing_task"], "TASK: unknown task 'long_runing_task'. Did you mean 'long_running_task'?"),
    (
        ["app.tasks.common_tasks.long_runing_task"],
        "TASK: unknown task 'app.tasks.common_tasks.long_runing_task'. "
        "Did you mean 'app.tasks.common_tasks.long_running_task'?",
    ),
    (["long_running_task", "--args", "[1,"], "--args: not valid JSON: Expecting value (line 1, column 4)."),
    (["long_running_task", "--kwargs", "{seconds: 1}"], "--kwargs: not valid JSON: Expecting property name enclosed"),
    (["long_running_task", "--args", "[" * 100_000], "--args: the JSON is nested too deeply."),
    (["long_running_task", "--args", '{"seconds": 1}'], "--args: Must be a JSON array."),
    (["long_running_task", "--kwargs", "[1]"], "--kwargs: Must be a JSON object."),
    (
        ["long_running_task", "--args", '["ten"]'],
        "--args: args[0]: parameter 'seconds' must be an integer, got str 'ten'",
    ),
    (["long_running_task", "--kwargs", '{"seconds": -1}'], "--kwargs: kwargs.seconds: parameter 'seconds' must be"),
    (["long_running_task", "--args", "[1, 2]"], "--args: jobs.tasks.common_tasks.long_running_task takes at most 1"),
    (["long_running_task", "--args", "[NaN]"], "--args: not valid JSON: NaN is not a JSON value."),
    (["long_running_task", "--kwargs", '{"seconds": -Infinity}'], "--kwargs: not valid JSON: -Infinity is not"),
    (
        ["long_running_task", "--priority", "asap"],
        '--priority: "asap" is not a priority. Allowed: urgent, high, normal',
    ),
    (["long_running_task", "--name", "x" * 201], "--name: Ensure this field has no more than 200 characters."),
    (["long_running_task", "--idempotency-key", "has space"], "--idempotency-key: must be 1-255 visible ASCII"),
    (["long_running_task", "--idempotency-key", "k" * 256], "--idempotency-key: must be 1-255 visible ASCII"),
    (["long_running_task", "--timeout", "5"], "--timeout: only means something with --wait."),
    (["long_running_task", "--wait", "--timeout", "0"], "--timeout: '0' is not a positive number of seconds."),
    (["long_running_task", "--wait", "--timeout", "soon"], "--timeout: 'soon' is not a positive number of seconds."),
    (["long_running_task", "--wait", "--timeout", "nan"], "--timeout: 'nan' is not a positive number of seconds."),
    (["long_running_task", "--wait", "--timeout=-3"], "--timeout: '-3' is not a positive number of seconds."),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=[str(index) for index in range(len(BAD_INPUT))])
def test_bad_input_exits_2_naming_the_option_and_writes_nothing(user, nothing_written, args, message):
    with nothing_written():
        error = failure(*args, "--user", user.username, returncode=2)
    assert error.startswith(message), error


def test_help_says_how_the_user_defaults_and_what_the_exit_status_means():
    text = load_command_class("jobs", "enqueue_job").create_parser("manage.py", "enqueue_job").format_help()
    assert "Examples:\n  manage.py enqueue_job long_running_task --kwargs" in text
    text = " ".join(text.split())
    assert "Default: the only active superuser; required when there is none or more than one." in text
    assert (
        "0 succeeded" in text
        and "1 failed, revoked or expired" in text
        and "2 bad input" in text
        and "3 timed out" in text
    )
    for option in ("--args", "--kwargs", "--priority", "--name", "--idempotency-key", "--wait", "--timeout", "--json"):
        assert option in text


# --- unique keys (README "Unique jobs") ----------------------------------------------------------


@pytest.mark.django_db
def test_a_unique_key_dedupes_and_says_so(user):
    rule = ("--unique-key", "nightly", "--unique-policy", "reject", "--user", user.username)
    first, _ = enqueue("long_running_task", *rule)
    again, err = enqueue("long_running_task", *rule)
    assert first == again
    assert "Deduplicated (existing)" in err
    job = Job.objects.get()
    assert (job.unique_key, job.unique_policy, job.duplicates) == ("nightly", "reject", 1)


@pytest.mark.django_db
def test_debounce_options_become_the_rule(user):
    enqueue(
        "long_running_task",
        *("--unique-key", "k", "--unique-policy", "debounce", "--unique-period", "2", "--unique-max-wait", "5"),
        *("--user", user.username),
    )
    assert Job.objects.get().run_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "named"),
    [
        (("--unique-policy", "nope"), "--unique-policy"),
        (("--unique-policy", "throttle"), "--unique-period"),
        (("--unique-policy", "debounce", "--unique-period", "soon"), "--unique-period"),
        (("--unique-policy", "debounce", "--unique-period", "5", "--unique-max-wait", "1"), "--unique-max-wait"),
        (("--unique-key", "x" * 256), "--unique-key"),
    ],
)
def test_bad_unique_options_are_exit_2_naming_the_option(user, options, named):
    message = failure("long_running_task", *options, "--user", user.username, returncode=2)
    assert message.startswith(named), message
    assert not Job.objects.exists()


# --- concurrency keys ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_concurrency_key_and_limit(user):
    out, _ = enqueue(
        "long_running_task", "--concurrency-key", "tenant-7", "--concurrency-limit", "3", "--user", user.username
    )
    job = Job.objects.get(id=out.strip())
    assert (job.concurrency_key, job.concurrency_limit) == ("tenant-7", 3)
    out, _ = enqueue("long_running_task", "--concurrency-key", "tenant-8", "--user", user.username)
    assert Job.objects.get(id=out.strip()).concurrency_limit == 1  # the limit defaults to 1


@pytest.mark.django_db
def test_unique_and_concurrency_options_together(user):
    options = ("--unique-key", "sync-7", "--concurrency-key", "tenant-7", "--user", user.username)
    first, _ = enqueue("long_running_task", *options)
    again, _ = enqueue("long_running_task", *options)
    assert first == again
    job = Job.objects.get()
    assert (job.unique_key, job.concurrency_key, job.concurrency_limit, job.duplicates) == ("sync-7", "tenant-7", 1, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--concurrency-key", ""], "--concurrency-key: "),
        (["--concurrency-key", "k" * 256], "--concurrency-key: At most 255 characters"),
        (["--concurrency-key", "k", "--concurrency-limit", "0"], "--concurrency-limit: Must be from 1"),
        (["--concurrency-key", "k", "--concurrency-limit", "two"], "--concurrency-limit: 'two' is not an integer."),
        (["--concurrency-limit", "2"], "--concurrency-limit: only means something with --concurrency-key."),
    ],
)
def test_a_bad_concurrency_option_is_exit_2_naming_it_and_creates_nothing(user, options, expected):
    message = failure("long_running_task", *options, "--user", user.username, returncode=2)
    assert message.startswith(expected), message
    assert not Job.objects.exists()
