"""A job's uniqueness rule (issue 21): what it is and how it is checked, below the catalog (a task's
default rule, ``@job_task(unique=...)``) and the services (``services/uniqueness.py`` enforces it).

``{"key": "sync-user-42", "policy": "debounce", "period": 2, "max_wait": 5}``; without ``key`` the
key is a hash of the task's name, args and kwargs (or only the kwargs named in ``kwargs``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from taskhub.errors import InvalidInput

from .models import UniquePolicy

KEY_MAX = 255
# A period or max_wait longer than this is a mistake (a job held back for more than a month).
PERIOD_MAX = 30 * 24 * 3600
TIMED_POLICIES = (UniquePolicy.THROTTLE, UniquePolicy.DEBOUNCE)
RULE_FIELDS = ("key", "policy", "period", "max_wait", "kwargs")


@dataclasses.dataclass(frozen=True)
class UniqueRule:
    policy: str = UniquePolicy.REJECT
    key: str | None = None
    period: float | None = None
    max_wait: float | None = None
    # The kwarg names a derived key covers (None: args and every kwarg).
    kwargs: tuple[str, ...] | None = None

    def key_for(self, task: str, args: list, kwargs: dict) -> str:
        """The job's key: the rule's own, or derived from the task and its arguments."""
        if self.key is not None:
            return self.key
        covered = kwargs if self.kwargs is None else {name: kwargs.get(name) for name in self.kwargs}
        data = {"task": task, "args": args if self.kwargs is None else [], "kwargs": covered}
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, cls=DjangoJSONEncoder).encode()).hexdigest()
        return f"{task[:150]}:{digest}"

    def as_dict(self) -> dict[str, Any]:
        return {name: value for name, value in dataclasses.asdict(self).items() if value is not None}


def _bad(field: str, message: str, prefix: str) -> InvalidInput:
    name = f"{prefix}.{field}" if field else prefix
    return InvalidInput(f"{name}: {message}", code="invalid_unique", fields={name: [message]})


def _seconds(value: Any, field: str, prefix: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(field, "A number of seconds.", prefix)
    if not 0 < value <= PERIOD_MAX:
        raise _bad(field, f"Between 0 (excluded) and {PERIOD_MAX} seconds.", prefix)
    return float(value)


def unique_rule(value: Any, *, field: str = "unique") -> UniqueRule | None:
    """A checked rule from a request's ``unique`` object (or a rule already checked); None for none.
    Raises InvalidInput naming the field (``unique.policy``, ``unique.period``…)."""
    if value is None or isinstance(value, UniqueRule):
        return value
    if not isinstance(value, dict):
        raise _bad("", 'An object such as {"key": "...", "policy": "reject"}.', field)
    unknown = sorted(set(value) - set(RULE_FIELDS))
    if unknown:
        raise _bad(unknown[0], f"Unknown field. Allowed: {', '.join(RULE_FIELDS)}.", field)
    policy = value.get("policy") or UniquePolicy.REJECT
    if policy not in UniquePolicy.values:
        raise _bad("policy", f"Unknown policy {policy!r}. Allowed: {', '.join(UniquePolicy.values)}.", field)
    key = value.get("key")
    if key is not None:
        if not isinstance(key, str) or not key.strip():
            raise _bad("key", "A non-empty string (or leave it out to derive it from the arguments).", field)
        if len(key) > KEY_MAX:
            raise _bad("key", f"At most {KEY_MAX} characters, got {len(key)}.", field)
        if "\x00" in key:
            raise _bad("key", "No NUL characters.", field)
    period = _seconds(value.get("period"), "period", field)
    max_wait = _seconds(value.get("max_wait"), "max_wait", field)
    if policy in TIMED_POLICIES and period is None:
        raise _bad("period", f"Required for the {policy} policy.", field)
    if max_wait is not None and policy != UniquePolicy.DEBOUNCE:
        raise _bad("max_wait", "Only for the debounce policy.", field)
    if period is not None and policy not in TIMED_POLICIES:
        raise _bad("period", f"Only for the {' and '.join(TIMED_POLICIES)} policies.", field)
    if max_wait is not None and max_wait < period:
        raise _bad("max_wait", f"At least the period ({period:g} s).", field)
    names = value.get("kwargs")
    if names is not None:
        if key is not None:
            raise _bad("kwargs", "Only when the key is derived (no key given).", field)
        if not isinstance(names, list | tuple) or not all(isinstance(name, str) and name for name in names):
            raise _bad("kwargs", "A list of kwarg names.", field)
        names = tuple(names)
    return UniqueRule(policy=policy, key=key, period=period, max_wait=max_wait, kwargs=names)
