"""How people read queue control: a rate limit ("10/min") and each line of the audit trail in words
("paused (reason: deploy)", "rate limit set to 10/min (was none)"). The admin, the API's
``summary`` and the command show these words; the stored before/after values stay JSON."""

from __future__ import annotations

from typing import Any

from ..models import QueueControlAction

# A period people name in one word: 10/min rather than 10 per 60 s.
_UNITS = {1: "s", 60: "min", 3600: "h", 86_400: "day"}


def rate_text(rate: dict[str, int] | None) -> str:
    """``{"limit": 10, "period": 60}`` as "10/min"; "5 per 10 s", "3 per 2 min"; None as "none"."""
    if not rate:
        return "none"
    limit, period = rate["limit"], rate["period"]
    if period in _UNITS:
        return f"{limit}/{_UNITS[period]}"
    for seconds, unit in ((3600, "h"), (60, "min")):
        if period % seconds == 0:
            return f"{limit} per {period // seconds} {unit}"
    return f"{limit} per {period} s"


def _value_text(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def change_text(*, action: str, before: dict | None, after: dict | None, reason: str = "") -> str:
    """One audit line in words: what changed, then why (when a reason was given)."""
    if action == QueueControlAction.PAUSED:
        text = "paused"
    elif action == QueueControlAction.RESUMED:
        text = "resumed"
    elif action == QueueControlAction.LIMIT_SET:
        text = f"rate limit set to {rate_text(after)} (was {rate_text(before)})"
    elif action == QueueControlAction.LIMIT_CLEARED:
        text = f"rate limit cleared (was {rate_text(before)})"
    else:  # a setting without words of its own: each value that changed, old → new
        before, after = before or {}, after or {}
        changed = [
            key for key in (*before, *(k for k in after if k not in before)) if before.get(key) != after.get(key)
        ]
        text = ", ".join(
            f"{key.replace('_', ' ')} changed {_value_text(before.get(key))} → {_value_text(after.get(key))}"
            for key in changed
        ) or str(action).replace("_", " ")
    return f"{text} (reason: {reason})" if reason else text
