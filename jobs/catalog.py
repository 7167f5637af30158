"""The task catalog: the only tasks a job may run (the security boundary).

A task joins the catalog through :func:`job_task`, which also makes it a Celery task on
:class:`jobs.tasks.base.JobTask`. Each entry knows its parameters (from the function
signature, or a declared JSON schema), its default priority, time limits, retry policy and
whether it stops cooperatively when cancelled. Input is checked against the entry before
anything is written or sent.
"""

from __future__ import annotations

import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celery import shared_task
from django.conf import settings

from taskhub.errors import InvalidInput

from .models import PRIORITY_QUEUES, JobPriority


@dataclass(frozen=True)
class Between:
    """Range constraint for a numeric parameter: ``seconds: Annotated[int, Between(1, 3600)]``."""

    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class MaxItems:
    """Length constraint for a list or string parameter."""

    limit: int


_JSON_TYPES: dict[Any, str] = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    list: "array",
    dict: "object",
}


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    json_type: str | None  # None: any JSON value
    nullable: bool
    required: bool
    default: Any
    constraints: tuple = ()
    item_type: str | None = None

    def schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {}
        if self.json_type:
            schema["type"] = [self.json_type, "null"] if self.nullable else self.json_type
        if self.item_type:
            schema["items"] = {"type": self.item_type}
        for constraint in self.constraints:
            if isinstance(constraint, Between):
                if constraint.minimum is not None:
                    schema["minimum"] = constraint.minimum
                if constraint.maximum is not None:
                    schema["maximum"] = constraint.maximum
            elif isinstance(constraint, MaxItems):
                schema["maxItems" if self.json_type == "array" else "maxLength"] = constraint.limit
        if not self.required:
            schema["default"] = self.default
        return schema

    def check(self, value: Any) -> str | None:
        """Why ``value`` does not fit this parameter, or None when it does."""
        if value is None:
            return None if self.nullable or self.json_type is None else f"must be {self.json_type}, not null"
        if self.json_type and not _fits(value, self.json_type):
            return f"must be {_article(self.json_type)}, got {_describe(value)}"
        if self.item_type and isinstance(value, list):
            for index, item in enumerate(value):
                if not _fits(item, self.item_type):
                    return f"item {index} must be {_article(self.item_type)}, got {_describe(item)}"
        for constraint in self.constraints:
            if isinstance(constraint, Between):
                if constraint.minimum is not None and value < constraint.minimum:
                    return f"must be at least {constraint.minimum}, got {value}"
                if constraint.maximum is not None and value > constraint.maximum:
                    return f"must be at most {constraint.maximum}, got {value}"
            elif isinstance(constraint, MaxItems) and len(value) > constraint.limit:
                return f"must have at most {constraint.limit} items, got {len(value)}"
        return None


def _fits(value: Any, json_type: str) -> bool:
    if json_type == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if json_type == "number":
        # JSON has no NaN or Infinity (and PostgreSQL's jsonb refuses them).
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, {"string": str, "boolean": bool, "array": list, "object": dict}[json_type])


def _article(json_type: str) -> str:
    return f"an {json_type}" if json_type[0] in "aeiou" else f"a {json_type}"


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"


def _param_from(parameter: inspect.Parameter, hints: dict[str, Any]) -> Param:
    annotation = hints.get(parameter.name, Any)
    constraints: list = []
    nullable = False
    while True:  # peel Annotated[...] and Optional[...] in any order
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation, *extra = typing.get_args(annotation)
            constraints.extend(extra)
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(annotation) if a is not type(None)]
            nullable = nullable or len(members) < len(typing.get_args(annotation))
            annotation = members[0] if len(members) == 1 else Any
        else:
            break
    item_type = None
    if origin is not None:
        if origin is list and typing.get_args(annotation):
            item_type = _JSON_TYPES.get(
                typing.get_origin(typing.get_args(annotation)[0]) or typing.get_args(annotation)[0]
            )
        annotation = origin
    json_type = _JSON_TYPES.get(annotation)
    required = parameter.default is inspect.Parameter.empty and parameter.kind not in (
        inspect.Parameter.VAR_KEYWORD,
        inspect.Parameter.VAR_POSITIONAL,
    )
    default = None if parameter.default is inspect.Parameter.empty else parameter.default
    return Param(parameter.name, parameter.kind, json_type, nullable, required, default, tuple(constraints), item_type)


@dataclass(frozen=True)
class RetryPolicy:
    """Automatic retries: exponential backoff ``base * 2**attempt`` capped at ``maximum``, with full jitter."""

    max_retries: int = 0
    backoff: float = 2.0
    backoff_max: float = 600.0
    jitter: bool = True
    retry_on: tuple[type[BaseException], ...] = (Exception,)


@dataclass(frozen=True)
class CatalogEntry:
    name: str
    function: Callable
    aliases: tuple[str, ...]
    description: str
    params: tuple[Param, ...]
    priority: str
    soft_time_limit: int | None
    time_limit: int
    retry: RetryPolicy
    cancellable: bool
    staff_only: bool = False
    schema_override: dict | None = field(default=None)

    @property
    def queue(self) -> str:
        return PRIORITY_QUEUES[self.priority]

    @property
    def celery_task(self):
        from taskhub.celery import app

        return app.tasks[self.name]

    def parameters_schema(self) -> dict[str, Any]:
        """The parameters as a JSON schema (what the catalog endpoint shows)."""
        if self.schema_override:
            return self.schema_override
        properties, required, positional = {}, [], []
        additional: Any = False
        for param in self.params:
            if param.kind is inspect.Parameter.VAR_KEYWORD:
                additional = {"type": param.json_type} if param.json_type else True
                continue
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                continue
            properties[param.name] = param.schema()
            if param.required:
                required.append(param.name)
            if param.kind is not inspect.Parameter.KEYWORD_ONLY:
                positional.append(param.name)
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": additional,
            "x-positional-order": positional,
        }

    def validate(self, args: list, kwargs: dict) -> None:
        """Raise InvalidInput naming the parameter when ``args``/``kwargs`` don't fit."""
        if not isinstance(args, list):
            raise InvalidInput("args: must be a JSON array.", fields={"args": ["Must be a JSON array."]})
        if not isinstance(kwargs, dict):
            raise InvalidInput("kwargs: must be a JSON object.", fields={"kwargs": ["Must be a JSON object."]})
        named = [
            p for p in self.params if p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        ]
        positional = [p for p in named if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        var_positional = next((p for p in self.params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
        var_keyword = next((p for p in self.params if p.kind is inspect.Parameter.VAR_KEYWORD), None)

        def fail(where: str, message: str):
            raise InvalidInput(
                f"{where}: {message}",
                code="invalid_arguments",
                fields={where.split("[")[0].split(".")[0]: [f"{where}: {message}"]},
            )

        if len(args) > len(positional) and var_positional is None:
            names = ", ".join(p.name for p in positional) or "none"
            fail(
                "args", f"{self.name} takes at most {len(positional)} positional argument(s) ({names}), got {len(args)}"
            )
        bound: dict[str, Any] = {}
        for index, value in enumerate(args):
            param = positional[index] if index < len(positional) else var_positional
            if problem := param.check(value):
                fail(f"args[{index}]", f"parameter '{param.name}' {problem}")
            if index < len(positional):
                bound[param.name] = value
        by_name = {p.name: p for p in named}
        for key, value in kwargs.items():
            if not isinstance(key, str) or not key.isidentifier():
                fail("kwargs", f"'{key}' is not a valid parameter name")
            param = by_name.get(key)
            if param is None:
                if var_keyword is None:
                    allowed = ", ".join(by_name) or "none"
                    fail(f"kwargs.{key}", f"unknown parameter '{key}' for {self.name} (parameters: {allowed})")
                param = var_keyword
            elif key in bound:
                fail(f"kwargs.{key}", f"parameter '{key}' was also given in args")
            if problem := param.check(value):
                fail(f"kwargs.{key}", f"parameter '{key}' {problem}")
            bound[key] = value
        missing = [p.name for p in named if p.required and p.name not in bound]
        if missing:
            fail("kwargs" if not positional else "args", f"missing required parameter '{missing[0]}' for {self.name}")

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
        }


class TaskCatalog:
    def __init__(self) -> None:
        self._entries: dict[str, CatalogEntry] = {}
        self._names: dict[str, str] = {}

    def add(self, entry: CatalogEntry) -> None:
        for name in (entry.name, *entry.aliases):
            if name in self._names and self._names[name] != entry.name:
                raise ValueError(f"Task name {name!r} is registered twice.")
            self._names[name] = entry.name
        self._entries[entry.name] = entry

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


def job_task(
    *,
    name: str,
    aliases: tuple[str, ...] = (),
    priority: str = JobPriority.NORMAL,
    soft_time_limit: int | None = None,
    time_limit: int | None = None,
    max_retries: int = 0,
    retry_backoff: float = 2.0,
    retry_backoff_max: float = 600.0,
    retry_jitter: bool = True,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    cancellable: bool = True,
    staff_only: bool = False,
    schema: dict | None = None,
):
    """Register ``function(self, ...)`` as a Celery task on JobTask and as a catalog entry.

    The function receives the task as ``self`` and reports with ``self.progress(percent,
    message=None, **meta)``. A task that never calls ``progress`` cannot stop cooperatively;
    declare it ``cancellable=False`` so a cancel terminates it after the grace period.
    """
    from .tasks.base import JobTask

    def decorate(function: Callable):
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
        params = tuple(_param_from(p, hints) for p in list(signature.parameters.values())[1:])
        hard = min(time_limit or settings.JOB_DEFAULT_TIME_LIMIT, settings.JOB_MAX_TIME_LIMIT)
        entry = CatalogEntry(
            name=name,
            function=function,
            aliases=tuple(aliases),
            description=inspect.cleandoc(function.__doc__ or ""),
            params=params,
            priority=JobPriority(priority),
            soft_time_limit=soft_time_limit,
            time_limit=hard,
            retry=RetryPolicy(max_retries, retry_backoff, retry_backoff_max, retry_jitter, retry_on),
            cancellable=cancellable,
            staff_only=staff_only,
            schema_override=schema,
        )
        catalog.add(entry)
        return shared_task(bind=True, base=JobTask, name=name, typing=False)(function)

    return decorate
