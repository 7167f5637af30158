"""What the operator commands share: short help with an epilog of examples, "did you mean", the
acting user, job ids, and JSON output. Exit status 1: an operation was refused (not found,
conflict); 2: bad input (nothing was done)."""

from __future__ import annotations

import difflib
import json
import uuid
from argparse import RawDescriptionHelpFormatter
from collections.abc import Iterable

from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.core.serializers.json import DjangoJSONEncoder

from accounts.models import User
from accounts.selectors import user_list
from jobs.catalog import CatalogEntry, catalog
from taskhub.errors import ApplicationError

EXIT_REFUSED = 1
EXIT_BAD_INPUT = 2
# How alike a suggestion must be (difflib's ratio; its default 0.6 offers 'django_task' for 'no_such_task').
SIMILAR = 0.75


class HelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Django's order of options (its own last), and the epilog of examples kept as written."""


class OperatorCommand(BaseCommand):
    """A command whose --help ends with ``examples``, one per line as typed."""

    examples: tuple[str, ...] = ()
    notes: str = ""  # printed before the examples (exit statuses, ...)

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        if self.examples or self.notes:
            kwargs.setdefault("epilog", epilog(self.examples, notes=self.notes))
        return super().create_parser(prog_name, subcommand, **kwargs)


def epilog(examples: Iterable[str], *, notes: str = "") -> str:
    text = "Examples:\n" + "\n".join(f"  {example}" for example in examples)
    return f"{notes}\n\n{text}" if notes else text


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=EXIT_BAD_INPUT)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the closest choice (difflib), or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=SIMILAR)
    return f" Did you mean {close[0]!r}?" if close else ""


def choice(option: str, value: str | None, choices: Iterable[str], what: str) -> str | None:
    """``value`` if it is one of ``choices``; else bad input naming the option, the closest choice and all."""
    choices = list(choices)
    if value is None or value in choices:
        return value
    raise bad_input(f"{option}: {value!r} is not {what}.{did_you_mean(value, choices)} ({', '.join(choices)})")


def task_entry(option: str, name: str) -> CatalogEntry:
    """The catalog entry for a task name or alias; bad input with the closest name otherwise."""
    if name in catalog:
        return catalog.get(name)
    names = [alias for entry in catalog.entries() for alias in (entry.name, *entry.aliases)]
    if "." not in name:  # a short name is most likely a typo of a short alias
        names = [alias for alias in names if "." not in alias] or names
    hint = did_you_mean(name, names) or " `manage.py tasks` lists them."
    raise bad_input(f"{option}: unknown task {name!r}.{hint}")


def acting_user(username: str | None, *, option: str = "--user") -> User | None:
    """The active user named ``username`` (None for none given: the operator)."""
    if username is None:
        return None
    user = user_list().filter(username=username).first()
    if user is None:
        raise bad_input(f"{option}: no user named {username!r}.{did_you_mean(username, _usernames())}")
    if not user.is_active:
        raise bad_input(f"{option}: {username!r} is inactive.")
    return user


def _usernames() -> list[str]:
    return list(user_list().filter(is_active=True).values_list("username", flat=True)[:10_000])


def job_ids(values: Iterable[str]) -> list[uuid.UUID]:
    """Every value as a job id, before anything is done: one malformed id refuses them all."""
    ids = []
    for value in values:
        try:
            ids.append(uuid.UUID(value))
        except ValueError:
            raise bad_input(f"ID: {value!r} is not a job id (a UUID).") from None
    return list(dict.fromkeys(ids))


def whole_number(option: str, value, *, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = low - 1
    if not low <= number <= high:
        raise bad_input(f"{option}: {value!r} is not a whole number from {low} to {high}.")
    return number


def why(exc: ApplicationError) -> str:
    """A refusal's kind as people say it: not found, conflict, not allowed, ..."""
    return {404: "not found", 409: "conflict", 403: "not allowed", 429: "over quota"}.get(exc.status_code, exc.code)


def as_json(data) -> str:
    return json.dumps(data, cls=DjangoJSONEncoder, indent=2)
