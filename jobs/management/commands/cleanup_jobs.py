"""manage.py cleanup_jobs: delete finished jobs and expired Celery result rows, in batches."""

import time
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from jobs.management.cli import OperatorCommand
from jobs.models import TERMINAL_STATUSES
from jobs.services.retention import (
    MAX_BATCH_SIZE,
    job_purge_finished,
    job_purge_task_results,
    job_purge_workflows,
    job_retention_policy,
    parse_duration,
)
from taskhub.errors import ApplicationError

EXIT_BAD_INPUT = 2
OPTION_NAMES = {"status": "--status", "batch_size": "--batch-size", "older_than": "--older-than"}


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_INPUT)


def short(duration: timedelta) -> str:
    """A duration in the largest unit that divides it exactly, as the settings write it (30d, 90m)."""
    seconds = int(duration.total_seconds())
    for unit, size in (("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


class Command(OperatorCommand):
    help = "Delete finished jobs (never pending or running ones) and expired Celery result rows, in batches."
    notes = (
        "Jobs succeeded, failed or revoked older than --older-than (default: each status's JOB_RETENTION_*\n"
        "setting) go with their timeline; Celery result rows older than CELERY_RESULT_EXPIRES. A job's age\n"
        "counts from finished_at (created_at if it has none). Each batch is its own short transaction.\n"
        "Exit status 2 on bad input (nothing deleted)."
    )
    examples = (
        "manage.py cleanup_jobs --dry-run",
        "manage.py cleanup_jobs --older-than 30d --status failed revoked",
        "manage.py cleanup_jobs --older-than 12h --batch-size 5000",
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help="A whole number and a unit (s, m, h, d, w), e.g. 30d, 12h, 90m or 1d12h. "
            "Default: JOB_RETENTION_SUCCEEDED / _FAILED / _REVOKED per status, JOB_RETENTION_DEAD for dead "
            "jobs (failed, every automatic retry used).",
        )
        parser.add_argument(
            "--status",
            nargs="+",
            action="extend",
            metavar="S",
            help=f"Only jobs in these statuses: {', '.join(TERMINAL_STATUSES)} (default: all three).",
        )
        parser.add_argument("--dry-run", action="store_true", help="Count what would be deleted; delete nothing.")
        parser.add_argument(
            "--batch-size",
            metavar="N",
            help=f"Rows per transaction, 1 to {MAX_BATCH_SIZE:,} (default: JOB_RETENTION_BATCH_SIZE, "
            f"{settings.JOB_RETENTION_BATCH_SIZE:,}).",
        )

    def handle(self, *args, **options):
        dry_run = options["dry_run"]
        statuses = options["status"] or [str(status) for status in TERMINAL_STATUSES]
        started = time.monotonic()
        try:
            older_than = options["older_than"]
            older_than = None if older_than is None else parse_duration(older_than, name="--older-than")
            batch_size = self.batch_size(options["batch_size"])
            policy = job_retention_policy() if older_than is None else {}
            counts = job_purge_finished(
                older_than=older_than, statuses=statuses, batch_size=batch_size, dry_run=dry_run
            )
            results = job_purge_task_results(batch_size=batch_size, dry_run=dry_run)
            workflows = job_purge_workflows(older_than=older_than, dry_run=dry_run)
        except ApplicationError as exc:
            raise bad_input(self.explain(exc)) from exc
        except ImproperlyConfigured as exc:
            raise bad_input(str(exc)) from exc
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} finished jobs (age from finished_at, else created_at):")
        shown = list(dict.fromkeys(statuses))
        if "dead" in counts:  # dead jobs, with an age of their own (JOB_RETENTION_DEAD)
            shown.insert(shown.index("failed") + 1, "dead")
        for status in shown:
            if status in counts:
                age = short(older_than or policy[status])
                self.stdout.write(f"  {status:<10} older than {age:<6} {counts[status]:>12,}")
            else:
                self.stdout.write(f"  {status:<10} kept forever (JOB_RETENTION_{status.upper()} is empty or 0)")
        self.stdout.write(f"  {'total':<10} {'':<17} {sum(counts.values()):>12,}")
        self.stdout.write(f"{verb} {workflows:,} finished workflows, each whole with its steps.")
        expires = settings.CELERY_RESULT_EXPIRES
        if expires:
            expires = expires if isinstance(expires, timedelta) else timedelta(seconds=expires)
            self.stdout.write(
                f"{verb} {results:,} Celery result rows older than {short(expires)} (CELERY_RESULT_EXPIRES)."
            )
        else:
            self.stdout.write("Celery result rows are kept forever (CELERY_RESULT_EXPIRES is 0).")
        done = "Dry run: nothing was deleted" if dry_run else "Done"
        self.stdout.write(self.style.SUCCESS(f"{done} ({time.monotonic() - started:.1f}s)."))

    @staticmethod
    def batch_size(value) -> int | None:
        if value is None or isinstance(value, int):
            return value
        try:
            return int(value)
        except ValueError:
            raise bad_input(f"--batch-size: {value!r} is not a whole number.") from None

    @staticmethod
    def explain(exc: ApplicationError) -> str:
        for field, messages in exc.fields.items():
            return f"{OPTION_NAMES.get(field, field)}: {messages[0]}"
        return exc.message
