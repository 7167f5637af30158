"""manage.py jobs list | show | cancel | retry | delete: the API's selectors and services for an operator.

As ``--user U`` the command acts as U would through the API: U's jobs (every job for staff, who
need the API's permission to act on another user's); another user's job is "not found".
Without ``--user`` it acts as the operator: every job, changes recorded as the system's.
"""

from __future__ import annotations

import uuid

from django.core.management.base import CommandError

from accounts.models import User
from jobs.catalog import catalog
from jobs.management.cli import (
    EXIT_REFUSED,
    HelpFormatter,
    OperatorCommand,
    acting_user,
    as_json,
    bad_input,
    choice,
    epilog,
    job_ids,
    task_entry,
    whole_number,
    why,
)
from jobs.management.commands.enqueue_job import Command as EnqueueCommand
from jobs.management.commands.enqueue_job import explain
from jobs.models import PRIORITY_QUEUES, Job, JobEventKind, JobStatus
from jobs.permissions import OTHERS_JOBS_PERMISSIONS
from jobs.selectors import job_events, job_get, job_list, job_list_all
from jobs.serializers import JobEventSerializer, JobRetrySerializer, JobSerializer
from jobs.services.operations import job_cancel, job_delete, job_retry
from taskhub.errors import ApplicationError, InvalidInput, NotFound

MAX_LIMIT = 1000
QUEUES = tuple(dict.fromkeys(PRIORITY_QUEUES.values()))
USER_HELP = "Act as this user, under the API's rules (default: the operator, every job)."
EXAMPLES = {
    "list": (
        "manage.py jobs list --status failed --limit 20",
        "manage.py jobs list --task long_running_task --user alice --json",
    ),
    "show": ("manage.py jobs show 5b0c6f1e-8a0e-4d0c-9a57-2f0b1c3d4e5f",),
    "cancel": ("manage.py jobs cancel 5b0c6f1e-8a0e-4d0c-9a57-2f0b1c3d4e5f --user alice",),
    "retry": (
        "manage.py jobs retry 5b0c6f1e-8a0e-4d0c-9a57-2f0b1c3d4e5f 0d1e2f30-4a5b-4c6d-8e7f-8091a2b3c4d5",
        """manage.py jobs retry 5b0c6f1e-8a0e-4d0c-9a57-2f0b1c3d4e5f --kwargs '{"seconds": 5}' --priority high""",
    ),
    "delete": ("manage.py jobs delete 5b0c6f1e-8a0e-4d0c-9a57-2f0b1c3d4e5f",),
}
# The permission a staff user acting on another user's job needs, per verb (the API's).
PERMISSION_ACTIONS = {"cancel": "cancel", "retry": "retry", "delete": "destroy"}


class Command(OperatorCommand):
    help = (
        "List, show, cancel, retry and delete jobs, as the API does. "
        "Exit status 0 done, 1 a job refused (not found, conflict), 2 bad input (nothing done)."
    )
    examples = tuple(example for examples in EXAMPLES.values() for example in examples)

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="list|show|cancel|retry|delete", required=True)
        listing = self._subparser(actions, "list", "List jobs, newest first.")
        listing.add_argument("--status", metavar="S", help=f"One of {', '.join(JobStatus.values)}.")
        listing.add_argument("--task", metavar="T", help="A task name or alias (`manage.py tasks`).")
        listing.add_argument("--queue", metavar="Q", help=f"One of {', '.join(QUEUES)}.")
        listing.add_argument("--limit", metavar="N", default="50", help=f"At most N jobs, 1-{MAX_LIMIT} (default 50).")
        show = self._subparser(actions, "show", "A job: its row, its timeline and its last error.")
        show.add_argument("ids", nargs=1, metavar="ID")
        for verb, text in (
            ("cancel", "Cancel jobs (pending: revoked at once; running: stopped at the next progress report)."),
            ("retry", "Run failed, revoked or expired jobs again (same id, next attempt); one job with new values."),
            ("delete", "Delete finished jobs and their timeline."),
        ):
            subparser = self._subparser(actions, verb, text)
            subparser.add_argument("ids", nargs="+", metavar="ID")
        # Edit and retry (one job): checked against the task as a create is; the timeline keeps the change.
        subparser = actions.choices["retry"]
        subparser.add_argument("--args", dest="job_args", metavar="JSON", help="New positional arguments (array).")
        subparser.add_argument("--kwargs", dest="job_kwargs", metavar="JSON", help="New keyword arguments (object).")
        subparser.add_argument("--priority", metavar="P", help="A new priority (urgent, high, normal, low).")

    def _subparser(self, actions, name: str, text: str):
        parser = actions.add_parser(
            name, help=text, description=text, formatter_class=HelpFormatter, epilog=epilog(EXAMPLES[name])
        )
        parser.add_argument("--user", metavar="U", help=USER_HELP)
        parser.add_argument("--json", action="store_true", help="Print the API's JSON instead of text.")
        return parser

    def handle(self, *args, action: str, **options):
        user = acting_user(options["user"])
        if action == "list":
            return self.list(user, options)
        ids = job_ids(options["ids"])
        if action == "show":
            return self.show(user, ids[0], print_json=options["json"])
        edits = self.retry_edits(options, ids) if action == "retry" else {}
        return self.operate(action, user, ids, print_json=options["json"], edits=edits)

    @staticmethod
    def retry_edits(options: dict, ids: list[uuid.UUID]) -> dict:
        """``--args``, ``--kwargs``, ``--priority`` checked as the API's retry body is (exit 2 if not)."""
        data = {}
        for field in ("args", "kwargs"):
            if options.get(f"job_{field}") is not None:
                data[field] = EnqueueCommand.parse_json(options[f"job_{field}"], option=f"--{field}")
        if options.get("priority") is not None:
            data["priority"] = options["priority"]
        if not data:
            return {}
        if len(ids) != 1:
            raise bad_input("--args, --kwargs and --priority edit one job: give one job id.")
        serializer = JobRetrySerializer(data=data)
        if not serializer.is_valid():
            raise bad_input(explain(serializer.errors, "Invalid input."))
        return serializer.validated_data

    # --- list, show ------------------------------------------------------------------------------

    def list(self, user: User | None, options: dict) -> None:
        status = choice("--status", options["status"], JobStatus.values, "a status")
        queue = choice("--queue", options["queue"], QUEUES, "a queue")
        task = task_entry("--task", options["task"]).name if options["task"] is not None else None
        limit = whole_number("--limit", options["limit"], low=1, high=MAX_LIMIT)
        jobs = job_list_all(names_only=True) if user is None else job_list(user=user, names_only=True)
        if user is not None:
            jobs = jobs.filter(owner=user)
        filters = {"status": status, "queue": queue, "celery_task_name": task}
        jobs = jobs.filter(**{field: value for field, value in filters.items() if value is not None})
        jobs = list(jobs.order_by("-created_at", "-id").running_apart()[:limit])
        if options["json"]:
            self.stdout.write(as_json(JobSerializer(jobs, many=True).data))
            return
        if not jobs:
            self.stdout.write("No jobs.")
            return
        self.stdout.write(
            f"{'id':<36}  {'status':<9} {'progress':>8}  {'task':<22} {'queue':<13} {'owner':<16} created"
        )
        for job in jobs:
            task_name = job.celery_task_name.rsplit(".", 1)[-1]
            self.stdout.write(
                f"{job.id}  {job.status:<9} {job.progress:>7}%  {task_name:<22} {job.queue:<13} "
                f"{job.owner_username:<16} {job.created_at:%Y-%m-%d %H:%M:%S}"
            )

    def find(self, user: User | None, job_id: uuid.UUID) -> Job:
        try:
            if user is not None:
                return job_get(user=user, job_id=job_id)
            job = job_list_all().filter(id=job_id).first()
            if job is None:
                raise NotFound(f"Job {job_id} not found.")
            return job
        except NotFound:
            raise CommandError(f"Job {job_id}: not found.", returncode=EXIT_REFUSED) from None

    @staticmethod
    def concurrency_row(job: Job) -> list[tuple[str, str]]:
        """Its concurrency key, if any (README "Concurrency keys"), and whether it waits for it."""
        if job.concurrency_key is None:
            return []
        waiting = " (waiting: the key is at its limit)" if job.concurrency_waiting_since else ""
        return [("concurrency", f"key {job.concurrency_key}, at most {job.concurrency_limit} at once{waiting}")]

    def show(self, user: User | None, job_id: uuid.UUID, *, print_json: bool) -> None:
        job = self.find(user, job_id)
        events = list(job_events(job=job))
        if print_json:
            data = {"job": JobSerializer(job).data, "events": JobEventSerializer(events, many=True).data}
            self.stdout.write(as_json(data))
            return
        message = (job.progress_meta or {}).get("message", "") if isinstance(job.progress_meta, dict) else ""
        rows = [
            ("name", job.name),
            ("task", job.celery_task_name),
            ("status", job.status + (" (cancel requested)" if job.cancel_requested_at else "")),
            ("progress", f"{job.progress}%" + (f"  {message}" if message else "")),
            ("priority", f"{job.priority} (queue {job.queue})"),
            *self.concurrency_row(job),
            ("owner", job.owner.username),
            ("attempt", f"{job.attempts + 1} of at most {job.max_retries + 1}"),
            ("args", job.args),
            ("kwargs", job.kwargs),
            ("created", job.created_at),
            ("expires", job.expires_at or "-"),
            ("started", job.started_at or "-"),
            ("finished", job.finished_at or "-"),
            ("worker", job.worker or "-"),
        ]
        if job.status == JobStatus.SUCCEEDED:
            rows.append(("result", job.result))
        self.stdout.write(f"Job {job.id}")
        for label, value in rows:
            self.stdout.write(f"  {label:<12}{value}")
        self.stdout.write("Timeline:")
        for event in events:
            moved = f"{event.from_status or '-'} -> {event.to_status}" if event.to_status else ""
            self.stdout.write(
                f"  {event.at:%Y-%m-%d %H:%M:%S}  {event.kind:<16} {moved:<22} {event.actor_label}: {event.message}"
            )
        error, traceback = self.last_error(job, events)
        if error:
            self.stdout.write("Last error:")
            self.stdout.write(f"  {error}")
            for line in traceback.rstrip().splitlines():
                self.stdout.write(f"    {line}")

    @staticmethod
    def last_error(job: Job, events) -> tuple[str, str]:
        """The job's error, or (after a retry cleared it) the one its latest retry recorded."""
        if job.error:
            return job.error, job.traceback
        for event in reversed(events):
            if event.kind == JobEventKind.RETRIED and (event.data or {}).get("previous_error"):
                return f"{event.data['previous_error']} (before the retry at {event.at:%Y-%m-%d %H:%M:%S})", ""
        return "", ""

    # --- cancel, retry, delete -------------------------------------------------------------------

    def operate(
        self, verb: str, user: User | None, ids: list[uuid.UUID], *, print_json: bool, edits: dict | None = None
    ) -> None:
        done, refusals = [], []
        for job_id in ids:
            try:
                job = self.act(verb, user, job_id, edits=edits or {})
            except InvalidInput as exc:
                if edits:  # a new value the task refuses: bad input, nothing written
                    raise bad_input(explain(exc.fields or {}, exc.message)) from exc
                refusals.append(self.refusal(verb, job_id, exc))
                continue
            except ApplicationError as exc:
                refusals.append(self.refusal(verb, job_id, exc))
                continue
            done.append({"id": str(job_id), "deleted": True} if job is None else job)
            if not print_json:
                self.stdout.write(self.report(verb, job_id, job, edited=list(edits or {})))
        if print_json:
            self.stdout.write(as_json(done))
        if refusals:
            raise CommandError("\n".join(refusals), returncode=EXIT_REFUSED)

    def act(self, verb: str, user: User | None, job_id: uuid.UUID, *, edits: dict) -> dict | None:
        """The job as the API answers it after the change (None once deleted)."""
        if user is not None:
            job = job_get(user=user, job_id=job_id)
            needed = OTHERS_JOBS_PERMISSIONS[PERMISSION_ACTIONS[verb]]
            if job.owner_id != user.pk and not user.has_perm(needed):
                raise ApplicationError(
                    f"you may not {verb} another user's job: that needs the {needed} permission.",
                    code="permission_denied",
                    status_code=403,
                )
        if verb == "delete":
            job_delete(job_id=job_id)
            return None
        if verb == "cancel":
            return JobSerializer(job_cancel(job_id=job_id, by=user)).data
        return JobSerializer(job_retry(job_id=job_id, by=user, **edits)).data

    @staticmethod
    def refusal(verb: str, job_id: uuid.UUID, exc: ApplicationError) -> str:
        """``Cannot cancel job X: conflict: it already succeeded.``: the job, the kind of refusal, why."""
        line = f"Cannot {verb} job {job_id}: {why(exc)}"
        if isinstance(exc, NotFound):
            return line + "."
        detail = exc.message.removeprefix(f"Cannot {verb} job {job_id}: ").replace(f"Job {job_id} ", "it ", 1)
        return f"{line}: {detail}"

    @staticmethod
    def report(verb: str, job_id: uuid.UUID, job: dict | None, *, edited: list[str]) -> str:
        if verb == "delete":
            return f"Job {job_id}: deleted."
        if verb == "retry":
            how = f" with new {', '.join(edited)}" if edited else ""
            return f"Job {job_id}: retried{how}; pending again (attempt {job['attempts'] + 1})."
        if job["status"] == JobStatus.REVOKED:
            return f"Job {job_id}: revoked (it had not started)."
        stops = "it is terminated at its next heartbeat"
        if job["celery_task_name"] not in catalog or catalog.get(job["celery_task_name"]).cancellable:
            stops = "it stops at its next progress report"
        return f"Job {job_id}: cancel requested ({stops})."
