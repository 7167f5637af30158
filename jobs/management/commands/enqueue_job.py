"""manage.py enqueue_job: create a job as the API does (same checks, same service), optionally follow it."""

import json
import math
import re

from django.core.management.base import CommandError
from django.core.serializers.json import DjangoJSONEncoder

from accounts.models import User
from accounts.selectors import user_list
from jobs.management.cli import OperatorCommand, acting_user, task_entry
from jobs.management.progress import WaitTimeout, display_for, job_states
from jobs.models import Job, JobPriority, JobStatus
from jobs.selectors import job_get
from jobs.serializers import JobCreateSerializer, JobSerializer
from jobs.services.creation import job_create
from taskhub.errors import ApplicationError, flat_fields

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMED_OUT = 3
EXIT_INTERRUPTED = 130

# The API's rule for its Idempotency-Key header (jobs/views.py), so a key works the same both ways.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
# The API's field names, as this command's arguments are called.
OPTION_NAMES = {
    "celery_task_name": "TASK",
    "args": "--args",
    "kwargs": "--kwargs",
    "priority": "--priority",
    "expires_at": "--expires-at",
    "expires_in": "--expires-in",
    "concurrency": "--concurrency-key",
    "concurrency.key": "--concurrency-key",
    "concurrency.limit": "--concurrency-limit",
}
RESULT_PREVIEW = 1000


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_INPUT)


def refuse_constant(name: str):
    """NaN and Infinity: Python's json accepts them, JSON (and the API's parser) does not."""
    raise ValueError(f"{name} is not a JSON value.")


def explain(fields: dict, message: str) -> str:
    """The first problem, named by the option at fault: ``--kwargs: kwargs.seconds: ...``."""
    for outer, errors in fields.items():
        field, messages = outer, errors
        if isinstance(errors, dict):  # a nested serializer's errors: {"unique": {"policy": [...]}}
            field, messages = next((f"{outer}.{inner}", texts) for inner, texts in errors.items())
        if field.startswith("unique."):  # --unique-key, --unique-policy, --unique-period, --unique-max-wait
            option = "--unique-" + field.split(".", 1)[1].replace("_", "-")
            return f"{option}: {messages[0].removeprefix(f'{field}: ')}"
        name = field if field in OPTION_NAMES else field.split("[")[0].split(".")[0]
        text = messages[0].removeprefix(f"{name}: ")
        return f"{OPTION_NAMES.get(name, '--' + name.replace('_', '-'))}: {text}"
    return message


class Command(OperatorCommand):
    help = "Create a job as POST /api/v1/jobs/ does and print its id; with --wait, follow it until it ends."
    notes = (
        "Exit status: 0 succeeded (or created, without --wait), 1 failed, revoked or expired,\n"
        "2 bad input (nothing created), 3 timed out waiting (the job goes on)."
    )
    examples = (
        """manage.py enqueue_job long_running_task --kwargs '{"seconds": 30}' --user alice""",
        "manage.py enqueue_job long_running_task --concurrency-key tenant-7 --concurrency-limit 1",
        "manage.py enqueue_job process_data --args '[[{\"a\": 1}]]' --wait --timeout 600",
        'manage.py enqueue_job send_notification --kwargs \'{"to": ["a@example.com"], "subject": "hi"}\' --json',
        "manage.py enqueue_job long_running_task --expires-in 300  # not started within 5 minutes: expired",
    )

    def add_arguments(self, parser):
        parser.add_argument("task", metavar="TASK", help="A task name or alias (see GET /api/v1/task-catalog/).")
        parser.add_argument(
            "--args", dest="job_args", metavar="JSON", help='Positional arguments, a JSON array: --args "[10]".'
        )
        parser.add_argument(
            "--kwargs",
            dest="job_kwargs",
            metavar="JSON",
            help="""Keyword arguments, a JSON object: '{"seconds": 10}'.""",
        )
        parser.add_argument(
            "--priority", metavar="P", help=f"One of {', '.join(JobPriority.values)} (default: the task's priority)."
        )
        parser.add_argument(
            "--user",
            metavar="USERNAME",
            help="Run the job as this (active) user. Default: the only active superuser; required when there is "
            "none or more than one.",
        )
        parser.add_argument("--name", metavar="N", help="A name for the job (default: the task's short name).")
        parser.add_argument(
            "--expires-at",
            metavar="ISO",
            help="A deadline, ISO 8601 with its time zone: not started by then, the job ends expired and never runs.",
        )
        parser.add_argument(
            "--expires-in",
            metavar="SECONDS",
            help="The deadline in seconds from now (instead of --expires-at).",
        )
        parser.add_argument(
            "--concurrency-key",
            metavar="K",
            help="At most --concurrency-limit jobs with this key run at once; the others wait (README, Concurrency "
            "keys). Default: the task's own rule, if any.",
        )
        parser.add_argument(
            "--concurrency-limit",
            metavar="N",
            help="With --concurrency-key: how many of its jobs may run at once, 1 or more (default 1).",
        )
        parser.add_argument(
            "--idempotency-key",
            metavar="K",
            help="1-255 visible ASCII characters: the same key and request return the first job instead of a new one.",
        )
        parser.add_argument(
            "--unique-key",
            metavar="K",
            help="A unique key (1-255 characters, per owner): a second create with it is deduplicated "
            '(README "Unique jobs"). With only --unique-policy, the key is derived from the task and arguments.',
        )
        parser.add_argument(
            "--unique-policy",
            metavar="P",
            help="What a duplicate does: reject (default), reject_pending, throttle, replace, debounce, keep_latest, "
            "cancel_running.",
        )
        parser.add_argument("--unique-period", metavar="SECONDS", help="throttle's window, debounce's delay.")
        parser.add_argument("--unique-max-wait", metavar="SECONDS", help="debounce: start at most this long after.")
        parser.add_argument("--wait", action="store_true", help="Follow the job (progress bar) until it ends.")
        parser.add_argument(
            "--timeout",
            metavar="SECONDS",
            help="With --wait: stop waiting after SECONDS (exit 3; the job goes on). Default: wait until it ends.",
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print the job as JSON (the API's fields) instead of its id; with --wait, the finished job.",
        )

    def handle(self, *args, task: str, wait: bool, **options):
        print_json = options["json"]
        owner = self.owner(options["user"])
        timeout = self.timeout(options["timeout"], wait=wait)
        key = options["idempotency_key"]
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise bad_input("--idempotency-key: must be 1-255 visible ASCII characters.")
        job = self.create(owner=owner, task=task, key=key, options=options)
        if (outcome := getattr(job, "dedupe_outcome", None)) not in (None, "cancelled_running"):
            self.stderr.write(f"Deduplicated ({outcome}): job {job.id} holds the unique key {job.unique_key}.")
        if not wait:
            self.stdout.write(self.as_json(job) if print_json else str(job.id))
            return
        if not print_json:
            self.stdout.write(str(job.id))
        # With --json, stdout carries only the JSON document: progress goes to stderr.
        stream = self.raw(self.stderr if print_json else self.stdout)
        job = self.follow(job, owner=owner, timeout=timeout, stream=stream)
        self.stdout.write(self.as_json(job) if print_json else self.summary(job))
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Job {job.id} failed: {job.error}", returncode=EXIT_FAILED)
        if job.status == JobStatus.REVOKED:
            by = f" by {job.cancelled_by.username}" if job.cancelled_by else ""
            raise CommandError(f"Job {job.id} was revoked{by}.", returncode=EXIT_FAILED)
        if job.status == JobStatus.EXPIRED:
            raise CommandError(f"Job {job.id} expired: not started by {job.expires_at}.", returncode=EXIT_FAILED)

    def owner(self, username: str | None) -> User:
        if username is not None:
            return acting_user(username)
        superusers = list(user_list().filter(is_superuser=True, is_active=True)[:2])
        if len(superusers) == 1:
            return superusers[0]
        how_many = "there is no active superuser" if not superusers else "there are several active superusers"
        raise bad_input(f"--user: give the user who owns the job ({how_many} to default to).")

    def timeout(self, value, *, wait: bool) -> float | None:
        if value is None:
            return None
        if not wait:
            raise bad_input("--timeout: only means something with --wait.")
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise bad_input(f"--timeout: {value!r} is not a positive number of seconds.")
        return seconds

    def create(self, *, owner: User, task: str, key: str | None, options: dict) -> Job:
        """Check the request with the API's serializer, then create it with the API's service."""
        task_entry("TASK", task)  # an unknown name: the closest one, not every name in the catalog
        data = {"celery_task_name": task}
        # Not "args": call_command() keeps that name for the positional arguments.
        for field in ("args", "kwargs"):
            if options[f"job_{field}"] is not None:
                data[field] = self.parse_json(options[f"job_{field}"], option=f"--{field}")
        for option in ("priority", "name", "expires_at", "expires_in"):
            if options[option] is not None:
                data[option] = options[option]
        if (seconds := data.get("expires_in")) is not None and seconds.strip().isdigit():
            data["expires_in"] = int(seconds)  # the API's JSON number; anything else: its error
        if unique := self.unique_rule(options):
            data["unique"] = unique
        if (concurrency := self.concurrency(options["concurrency_key"], options["concurrency_limit"])) is not None:
            data["concurrency"] = concurrency
        serializer = JobCreateSerializer(data=data)
        if not serializer.is_valid():
            raise bad_input(explain(flat_fields(serializer.errors), "Invalid input."))
        try:
            return job_create(owner=owner, idempotency_key=key, **serializer.validated_data)
        except ApplicationError as exc:
            raise bad_input(explain(exc.fields, exc.message)) from exc

    @staticmethod
    def unique_rule(options: dict) -> dict | None:
        """The API's ``unique`` object from the --unique-* options (None when none is given)."""
        rule = {}
        for field in ("key", "policy", "period", "max_wait"):
            value = options.get(f"unique_{field}")
            if value is None:
                continue
            if field in ("period", "max_wait"):
                try:
                    value = float(value)
                except ValueError:
                    raise bad_input(  # noqa: B904 - the message says it all
                        f"--unique-{field.replace('_', '-')}: {value!r} is not a number of seconds."
                    )
            rule[field] = value
        return rule or None

    @staticmethod
    def concurrency(key: str | None, limit: str | None) -> dict | None:
        """--concurrency-key and --concurrency-limit as the API's ``concurrency`` (its checks follow)."""
        if key is None:
            if limit is not None:
                raise bad_input("--concurrency-limit: only means something with --concurrency-key.")
            return None
        if limit is None:
            return {"key": key, "limit": 1}
        try:
            return {"key": key, "limit": int(limit)}
        except ValueError:
            raise bad_input(f"--concurrency-limit: {limit!r} is not an integer.") from None

    @staticmethod
    def parse_json(text: str, *, option: str):
        try:
            return json.loads(text, parse_constant=refuse_constant)
        except json.JSONDecodeError as exc:
            raise bad_input(f"{option}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from exc
        except ValueError as exc:
            raise bad_input(f"{option}: not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise bad_input(f"{option}: the JSON is nested too deeply.") from exc

    @staticmethod
    def raw(wrapper):
        """The stream under Django's OutputWrapper, which appends a newline to every write."""
        return getattr(wrapper, "_out", wrapper)

    def follow(self, job: Job, *, owner: User, timeout: float | None, stream) -> Job:
        try:
            with display_for(stream) as display:
                for state in job_states(user=owner, job_id=job.id, timeout=timeout):
                    display.show(state)
        except WaitTimeout as exc:
            state = exc.state
            raise CommandError(
                f"Timed out after {timeout:g}s waiting for job {job.id}: it is {state.status} at {state.progress}% "
                "and goes on.",
                returncode=EXIT_TIMED_OUT,
            ) from exc
        except KeyboardInterrupt:
            raise CommandError(f"Stopped waiting; job {job.id} goes on.", returncode=EXIT_INTERRUPTED) from None
        except ApplicationError as exc:
            raise CommandError(exc.message, returncode=EXIT_FAILED) from exc
        return job_get(user=owner, job_id=job.id)

    @staticmethod
    def summary(job: Job) -> str:
        ran = job.started_at and job.finished_at
        took = f" in {(job.finished_at - job.started_at).total_seconds():.1f}s" if ran else ""
        line = f"Job {job.id} {job.status}{took}."
        if job.status == JobStatus.SUCCEEDED:
            result = json.dumps(job.result, cls=DjangoJSONEncoder)
            line += f" Result: {result[:RESULT_PREVIEW]}{'…' if len(result) > RESULT_PREVIEW else ''}"
        return line

    @staticmethod
    def as_json(job: Job) -> str:
        return json.dumps(JobSerializer(job).data, cls=DjangoJSONEncoder, indent=2)
