"""manage.py schedules list | run-now | enable | disable: the schedules API's selectors and services.

As ``--user U`` the command acts as U would through /api/v1/schedules/ (another user's schedule
is "not found"); without it, as the operator: every schedule.
"""

from __future__ import annotations

from django.core.management.base import CommandError
from django_celery_beat.models import PeriodicTask

from accounts.models import User
from jobs.management.cli import EXIT_REFUSED, HelpFormatter, OperatorCommand, acting_user, as_json, bad_input, epilog
from jobs.schedules.fields import display_name
from jobs.schedules.firing import job_schedule_run_now
from jobs.schedules.selectors import job_schedule_get, job_schedule_list, job_schedule_list_all
from jobs.schedules.serializers import ScheduleSerializer
from jobs.schedules.services import job_schedule_set_enabled
from jobs.serializers import JobSerializer
from taskhub.errors import ApplicationError, NotFound

EXAMPLES = {
    "list": ("manage.py schedules list", "manage.py schedules list --user alice --json"),
    "run-now": ("manage.py schedules run-now 3",),
    "enable": ("manage.py schedules enable 3",),
    "disable": ("manage.py schedules disable 3",),
}
ACTIONS = {
    "list": "List schedules, newest first.",
    "run-now": "Create the schedule's job now, outside its slots (also when disabled).",
    "enable": "Turn a schedule on (its first interval counts from now).",
    "disable": "Turn a schedule off.",
}


class Command(OperatorCommand):
    help = (
        "List schedules; run one now; enable or disable one. "
        "Exit status 0 done, 1 refused (not found, ...), 2 bad input (nothing done)."
    )
    examples = tuple(example for examples in EXAMPLES.values() for example in examples)

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", metavar="list|run-now|enable|disable", required=True)
        for name, text in ACTIONS.items():
            sub = actions.add_parser(
                name, help=text, description=text, formatter_class=HelpFormatter, epilog=epilog(EXAMPLES[name])
            )
            if name != "list":
                sub.add_argument("schedule_id", metavar="ID", help="The schedule's id (`schedules list`).")
            sub.add_argument("--user", metavar="U", help="Act as this user, under the API's rules (default: all).")
            sub.add_argument("--json", action="store_true", help="Print the API's JSON instead of text.")

    def handle(self, *args, action: str, **options):
        user = acting_user(options["user"])
        print_json = options["json"]
        if action == "list":
            return self.list(user, print_json=print_json)
        schedule = self.find(user, options["schedule_id"])
        if action == "run-now":
            try:
                job = job_schedule_run_now(periodic_task_id=schedule.pk)
            except ApplicationError as exc:
                raise CommandError(
                    f"Cannot run schedule {schedule.pk} now: {exc.message}", returncode=EXIT_REFUSED
                ) from exc
            text = f"Schedule {schedule.pk} ({display_name(schedule)}): job {job.id} created."
            self.stdout.write(as_json(JobSerializer(job).data) if print_json else text)
            return
        enabled = action == "enable"
        job_schedule_set_enabled(periodic_task_id=schedule.pk, enabled=enabled)
        if print_json:
            self.stdout.write(as_json(ScheduleSerializer(self.find(user, str(schedule.pk))).data))
            return
        self.stdout.write(f"Schedule {schedule.pk} ({display_name(schedule)}): {'enabled' if enabled else 'disabled'}.")

    @staticmethod
    def find(user: User | None, value: str) -> PeriodicTask:
        if not value.isascii() or not value.isdigit():
            raise bad_input(f"ID: {value!r} is not a schedule id (a whole number).")
        try:
            if user is not None:
                return job_schedule_get(user=user, schedule_id=int(value))
            schedule = job_schedule_list_all().filter(pk=int(value)).first()
            if schedule is None:
                raise NotFound(f"Schedule {value} not found.")
            return schedule
        except NotFound:
            raise CommandError(f"Schedule {int(value)}: not found.", returncode=EXIT_REFUSED) from None

    def list(self, user: User | None, *, print_json: bool) -> None:
        schedules = job_schedule_list_all() if user is None else job_schedule_list(user=user)
        if user is not None:
            schedules = schedules.filter(job_schedule__owner=user)
        schedules = list(schedules.order_by("-id"))
        if print_json:
            self.stdout.write(as_json(ScheduleSerializer(schedules, many=True).data))
            return
        if not schedules:
            self.stdout.write("No schedules.")
            return
        self.stdout.write(f"{'id':<6}{'enabled':<9}{'name':<24}{'task':<22}{'when':<36}{'owner':<16}last run")
        for schedule in schedules:
            last = f"{schedule.last_run_at:%Y-%m-%d %H:%M:%S}" if schedule.last_run_at else "-"
            self.stdout.write(
                f"{schedule.pk:<6}{'yes' if schedule.enabled else 'no':<9}{display_name(schedule):<24}"
                f"{schedule.task.rsplit('.', 1)[-1]:<22}{when(schedule):<36}"
                f"{schedule.job_schedule.owner.username:<16}{last}"
            )


def when(schedule: PeriodicTask) -> str:
    if schedule.interval:
        return f"every {schedule.interval.every} {schedule.interval.period}"
    if schedule.crontab:
        cron = schedule.crontab
        fields = (cron.minute, cron.hour, cron.day_of_month, cron.month_of_year, cron.day_of_week)
        return f"cron {' '.join(fields)} {cron.timezone}"
    return "-"
