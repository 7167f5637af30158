"""manage.py queues: list, pause and resume queues, set and clear rate limits (audited as "command")."""

import re

from django.core.management.base import CommandError

from accounts.models import User
from jobs.management.cli import OperatorCommand, as_json
from jobs.models import QueueControlSource, RateLimitScope
from jobs.queues.selectors import queue_list, rate_limit_list
from jobs.queues.serializers import QueueSerializer
from jobs.queues.services import queue_pause, queue_resume, rate_limit_clear, rate_limit_set
from jobs.queues.wording import rate_text
from taskhub.errors import ApplicationError

EXIT_BAD_INPUT = 2
RATE = re.compile(r"^(-?\d+)/(-?\d+)s?$")
COMMAND = QueueControlSource.COMMAND


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_INPUT)


class Command(OperatorCommand):
    help = "Queue control: list, pause and resume queues; set and clear rate limits (audited)."
    notes = (
        "resume sends the queue's held jobs at once; limit QUEUE N/PERIOD allows at most N starts in any\n"
        "PERIOD seconds; with --task, limit and unlimit apply to a catalog task instead.\n"
        "Exit status 0 done (or nothing to change), 2 bad input (nothing changed)."
    )
    examples = (
        "manage.py queues list --json",
        'manage.py queues pause default --user alice --reason "partner API down"',
        "manage.py queues resume default",
        "manage.py queues limit default 5/10",
        "manage.py queues limit send_notification 100/60 --task",
        "manage.py queues unlimit default",
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=("list", "pause", "resume", "limit", "unlimit"))
        parser.add_argument("target", nargs="?", help="The queue (or, with --task, the task name or alias).")
        parser.add_argument("rate", nargs="?", help="limit: N/PERIOD, e.g. 5/10 for 5 starts per 10 seconds.")
        parser.add_argument("--task", action="store_true", help="limit / unlimit a task, not a queue.")
        parser.add_argument("--user", help="Who is acting, for the audit trail (default: system).")
        parser.add_argument("--reason", default="", help="Why, for the audit trail.")
        parser.add_argument("--json", action="store_true", help="list: the API's JSON (GET /api/v1/queues/).")

    def handle(self, *args, action, target, rate, task, user, reason, **options):
        by = self._user(user)
        if action == "list":
            if options["json"]:
                return self.stdout.write(as_json(QueueSerializer(queue_list(), many=True).data))
            return self._list()
        if not target:
            raise bad_input(f"{action}: name the {'task' if task else 'queue'}.")
        if task and action in ("pause", "resume"):
            raise bad_input("--task: only limit and unlimit apply to a task.")
        scope = RateLimitScope.TASK if task else RateLimitScope.QUEUE
        try:
            if action == "pause":
                done = queue_pause(queue=target, by=by, source=COMMAND, reason=reason)
                self.stdout.write(f"Paused {target}." if done else f"{target} was paused already.")
            elif action == "resume":
                sent = queue_resume(queue=target, by=by, source=COMMAND, reason=reason)
                self.stdout.write(
                    f"{target} was not paused." if sent is None else f"Resumed {target}: sent {sent} held jobs."
                )
            elif action == "limit":
                limit, period = self._rate(rate)
                saved = rate_limit_set(
                    scope=scope, name=target, limit=limit, period=period, by=by, source=COMMAND, reason=reason
                )
                self.stdout.write(f"Rate limit of {saved.scope} {saved.name}: {saved.limit} per {saved.period}s.")
            else:
                done = rate_limit_clear(scope=scope, name=target, by=by, source=COMMAND, reason=reason)
                self.stdout.write(f"Cleared the rate limit of {target}." if done else f"{target} had no rate limit.")
        except ApplicationError as exc:
            raise bad_input(exc.message) from exc

    def _user(self, username: str | None) -> User | None:
        if username is None:
            return None
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise bad_input(f"--user: no active user {username!r}.")
        return user

    def _rate(self, rate: str | None) -> tuple[int, int]:
        match = RATE.match(rate or "")
        if not match:
            raise bad_input(f"rate: expected N/PERIOD (e.g. 5/10: 5 starts per 10 seconds), got {rate!r}.")
        return int(match[1]), int(match[2])

    def _list(self) -> None:
        self.stdout.write(
            f"{'queue':<16}{'state':<10}{'rate limit':<14}{'pending':>9}{'held':>9}{'running':>9}{'oldest pending':>16}"
        )
        for queue in queue_list():
            seconds = queue["oldest_pending_seconds"]
            oldest = "-" if seconds is None else f"{seconds:.1f}s"
            state, rate = "paused" if queue["paused"] else "running", rate_text(queue["rate_limit"])
            self.stdout.write(
                f"{queue['name']:<16}{state:<10}{rate:<14}"
                f"{queue['pending']:>9}{queue['held']:>9}{queue['running']:>9}{oldest:>16}"
            )
        for limit in rate_limit_list().filter(scope=RateLimitScope.TASK):
            self.stdout.write(f"task {limit.name}: {rate_text({'limit': limit.limit, 'period': limit.period})}")
