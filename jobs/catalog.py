"""The task catalog: the only tasks a job may run (the security boundary).

Each entry knows its parameters (one JSON Schema, shown by the catalog endpoint and enforced
on every job's args/kwargs: :mod:`jobs.parameters`), its default priority, time limits, retry
policy and how a cancel stops it. Tasks join the catalog through
:func:`jobs.tasks.registry.job_task`. This module imports neither the task base nor the
services: both depend on it, not the other way round.
"""

from __future__ import annotations

import inspect
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery import Task, current_app
from django.conf import settings

from taskhub.errors import ApplicationError, InvalidInput
from taskhub.plugins import package_of

from .models import PRIORITY_QUEUES, JobPriority
from .parameters import Parameters
from .unique import UniqueRule, unique_rule


@dataclass(frozen=True)
class RetryPolicy:
    """Automatic retries of a failed attempt, spaced by :meth:`delay`."""

    max_retries: int = 0
    backoff: float = 2.0
    backoff_max: float = 600.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)

    def delay(self, attempts: int) -> float:
        """Seconds to wait after attempt ``attempts`` (0-based) failed: ``backoff * 2**attempts``
        capped at ``backoff_max``. With equal jitter (half fixed, half uniformly random), jobs
        that failed together come back spread out, and none comes back at once."""
        delay = min(self.backoff_max, self.backoff * (2**attempts))
        return delay / 2 + random.uniform(0, delay / 2) if self.jitter else delay


CONCURRENCY_KEY_MAX = 255
CONCURRENCY_LIMIT_MAX = 1_000_000
# A key has a character other than ASCII white space, and no NUL (PostgreSQL text cannot hold one);
# written for both Python and the OpenAPI document (an ECMA regex: the same classes, spelt out).
CONCURRENCY_KEY_PATTERN = r"^[^\x00]*[^\x00 \t\n\r\f\v][^\x00]*$"


def _refuse(field: str, message: str):
    raise InvalidInput(f"{field}: {message}", fields={field: [message]})


@dataclass(frozen=True)
class Concurrency:
    """At most ``limit`` jobs with the same ``key`` run at once (README "Concurrency keys").

    A request's key is taken as written. A task's default (``@job_task(concurrency=...)``) may be a
    template over the task's arguments, ``"tenant-{tenant_id}"``: each ``{name}`` is the job's
    argument of that name (plain names only), rendered when the job is created (``render``).
    """

    key: str
    limit: int

    @classmethod
    def parse(cls, value: Any, *, field: str = "concurrency") -> Concurrency | None:
        """A request's ``{"key": ..., "limit": ...}`` checked (None for null); InvalidInput naming
        the field (``concurrency.key``, ``concurrency.limit``) otherwise."""
        if value is None or isinstance(value, cls):
            return value
        if not isinstance(value, dict):
            _refuse(field, 'Must be an object: {"key": "tenant-7", "limit": 1}.')
        for name in value:
            if name not in ("key", "limit"):
                _refuse(f"{field}.{name}", "Unknown field: a concurrency rule has only key and limit.")
        key, limit = value.get("key"), value.get("limit")
        if not isinstance(key, str) or not key:
            _refuse(f"{field}.key", "A non-empty string is required.")
        if len(key) > CONCURRENCY_KEY_MAX:
            _refuse(f"{field}.key", f"At most {CONCURRENCY_KEY_MAX} characters, got {len(key)}.")
        if "\x00" in key:
            _refuse(f"{field}.key", "NUL characters are not allowed.")
        if not re.fullmatch(CONCURRENCY_KEY_PATTERN, key):
            _refuse(f"{field}.key", "A key of white space only is not allowed.")
        if isinstance(limit, float) and limit.is_integer():
            limit = int(limit)  # 2.0 is the integer 2 in JSON, as every integer field takes it
        if isinstance(limit, bool) or not isinstance(limit, int):
            _refuse(f"{field}.limit", f"An integer from 1 to {CONCURRENCY_LIMIT_MAX} is required.")
        if not 1 <= limit <= CONCURRENCY_LIMIT_MAX:
            _refuse(f"{field}.limit", f"Must be from 1 to {CONCURRENCY_LIMIT_MAX}, got {limit}.")
        return cls(key=key, limit=limit)

    def names(self) -> list[str]:
        """The argument names a template key uses; ValueError for anything but ``{name}``."""
        names = []
        for _, name, spec, conversion in string.Formatter().parse(self.key):
            if name is None:
                continue
            if not name.isidentifier() or spec or conversion:
                raise ValueError(f"concurrency key {self.key!r}: only plain {{name}} placeholders are allowed")
            names.append(name)
        return names

    def render(self, values: dict[str, Any], *, field: str = "concurrency") -> Concurrency:
        """The rule for one job: each ``{name}`` replaced by the job's argument of that name (``values``:
        its kwargs and its arguments bound by name, defaults included). InvalidInput naming what is missing."""
        names = self.names()
        if not names:
            return self
        missing = [name for name in names if values.get(name) is None]
        if missing:
            _refuse(f"kwargs.{missing[0]}", f"The task's concurrency key {self.key!r} needs the argument {missing[0]}.")
        key = self.key.format(**{name: values[name] for name in names})
        return Concurrency.parse({"key": key, "limit": self.limit}, field=field)


@dataclass(frozen=True)
class CatalogEntry:
    """One task a job may run.

    ``cancellable``: the task reports progress, so a cancel stops it at its next progress call;
    a non-cancellable task is terminated at the next heartbeat after a cancel (no grace period).
    """

    name: str
    function: Callable
    aliases: tuple[str, ...]
    description: str
    parameters: Parameters
    priority: str
    soft_time_limit: int | None
    time_limit: int
    retry: RetryPolicy
    cancellable: bool
    staff_only: bool = False
    # Who may run it with which arguments, beyond the schema: ``authorize(owner, arguments)``
    # raises an ApplicationError (e.g. a 403) to refuse; ``arguments`` are bound by name.
    authorize: Callable[[Any, dict[str, Any]], None] | None = None
    # How much of it an owner may use: ``budget(owner, [arguments, ...])`` is given every job of one
    # request (a bulk request's all at once) and raises an ApplicationError (e.g. a 429) to refuse.
    budget: Callable[[Any, list[dict[str, Any]]], None] | None = None
    # A concurrency key every job of the task gets unless its request names one (its key may be a
    # template over the arguments: Concurrency.render).
    concurrency: Concurrency | None = None
    # Where it comes from: "taskhub" (None), or an installed task package's distribution and version.
    package: str = "taskhub"
    package_version: str | None = None
    # Its jobs' uniqueness rule when a request gives none (``@job_task(unique=...)``, jobs/unique.py).
    unique: UniqueRule | None = None

    @classmethod
    def from_function(
        cls,
        function: Callable,
        *,
        name: str,
        aliases: tuple[str, ...] = (),
        priority: str = JobPriority.NORMAL,
        soft_time_limit: int | None = None,
        time_limit: int | None = None,
        retry: RetryPolicy | None = None,
        cancellable: bool = True,
        staff_only: bool = False,
        schema: dict[str, Any] | None = None,
        authorize: Callable[[Any, dict[str, Any]], None] | None = None,
        budget: Callable[[Any, list[dict[str, Any]]], None] | None = None,
        unique: dict[str, Any] | None = None,
        concurrency: dict[str, Any] | Concurrency | None = None,
    ) -> CatalogEntry:
        """The entry for ``function(self, ...)``. A declared ``schema`` replaces the one derived
        from the signature and is checked now, so a broken one fails at import time."""
        package, package_version = package_of(function.__module__)
        rule = Concurrency.parse(concurrency, field=f"{name}: concurrency")
        if rule is not None:
            rule.names()  # a bad template fails at import time
        return cls(
            name=name,
            function=function,
            aliases=tuple(aliases),
            description=inspect.cleandoc(function.__doc__ or ""),
            parameters=Parameters.of(function, task=name, schema=schema),
            priority=JobPriority(priority),
            soft_time_limit=soft_time_limit,
            time_limit=min(time_limit or settings.JOB_DEFAULT_TIME_LIMIT, settings.JOB_MAX_TIME_LIMIT),
            retry=retry or RetryPolicy(),
            cancellable=cancellable,
            staff_only=staff_only,
            authorize=authorize,
            budget=budget,
            concurrency=rule,
            package=package,
            package_version=package_version,
            unique=unique_rule(unique, field=f"{name}: unique"),
        )

    @property
    def queue(self) -> str:
        return PRIORITY_QUEUES[self.priority]

    @property
    def celery_task(self) -> Task:
        return current_app.tasks[self.name]

    def parameters_schema(self) -> dict[str, Any]:
        """The parameters as a JSON schema: what the catalog endpoint shows, and what is enforced."""
        return self.parameters.schema

    def validate(self, args: list, kwargs: dict) -> None:
        """Raise InvalidInput naming the argument when ``args``/``kwargs`` don't fit the schema."""
        self.parameters.validate(args, kwargs)

    def check_owner(self, owner: Any) -> None:
        """Refuse (403) a staff-only task to anyone else, before their arguments are even read."""
        if self.staff_only and not owner.is_staff:
            raise ApplicationError(f"Task {self.name} is for staff only.", code="permission_denied", status_code=403)

    def check_arguments(self, owner: Any, args: list, kwargs: dict) -> None:
        """Refuse (raise) arguments ``owner`` may not run the task with (valid ones: validate first)."""
        if self.authorize is not None:
            self.authorize(owner, self.parameters.bind(args, kwargs))

    def check_budget(self, owner: Any, calls: list[tuple[list, dict]]) -> None:
        """Refuse (raise) jobs ``(args, kwargs)`` that together exceed the owner's budget."""
        if self.budget is not None:
            self.budget(owner, [self.parameters.bind(args, kwargs) for args, kwargs in calls])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "aliases": list(self.aliases),
            "description": self.description,
            "parameters": self.parameters_schema(),
            "default_priority": self.priority,
            "queue": self.queue,
            "soft_time_limit": self.soft_time_limit,
            "time_limit": self.time_limit,
            "max_retries": self.retry.max_retries,
            "retry_backoff": self.retry.backoff,
            "retry_backoff_max": self.retry.backoff_max,
            "cancellable": self.cancellable,
            "staff_only": self.staff_only,
            "concurrency": self.concurrency and {"key": self.concurrency.key, "limit": self.concurrency.limit},
            "package": self.package,
            "package_version": self.package_version,
        }

    @property
    def origin(self) -> str:
        """Its module and package, as error messages name them."""
        version = f" {self.package_version}" if self.package_version else ""
        return f"{self.function.__module__} ({self.package}{version})"


class TaskCatalog:
    def __init__(self) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        self._names: dict[str, str] = {}

    def add(self, entry: CatalogEntry) -> None:
        """Add a task; a name or alias another task has (or a second task of the same name) is a
        ValueError naming both, and nothing of ``entry`` is added."""
        for name in (entry.name, *entry.aliases):
            holder = self._entries.get(self._names.get(name, ""))
            if holder is not None and holder is not entry:
                raise ValueError(
                    f"Task name {name!r} of {entry.origin} is registered twice: {holder.origin} has it already."
                )
        for name in (entry.name, *entry.aliases):
            self._names[name] = entry.name
        self._entries[entry.name] = entry

    def remove(self, name: str) -> None:
        """Forget a task (by name or alias) and its aliases: a test's temporary task."""
        entry = self._entries.pop(self._names[name])
        for key in (entry.name, *entry.aliases):
            self._names.pop(key, None)

    def entries(self) -> list[CatalogEntry]:
        return sorted(self._entries.values(), key=lambda entry: entry.name)

    def get(self, name: str) -> CatalogEntry:
        """The entry for a task name or alias; InvalidInput listing the allowed names if unknown."""
        canonical = self._names.get(name) if isinstance(name, str) else None
        if canonical is None:
            allowed = ", ".join(entry.name for entry in self.entries())
            message = f"Unknown task {name!r}. Allowed tasks: {allowed}."
            raise InvalidInput(
                f"celery_task_name: {message}", code="unknown_task", fields={"celery_task_name": [message]}
            )
        return self._entries[canonical]

    def __contains__(self, name: str) -> bool:
        return name in self._names


catalog = TaskCatalog()
