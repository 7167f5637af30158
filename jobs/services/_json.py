"""What may be stored in a JSON column: checked before writing, so bad values are a 400, not a 500."""

from __future__ import annotations

import json
import math
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from taskhub.errors import InvalidInput

MAX_JSON_DEPTH = 100


def json_problem(value: Any) -> str | None:
    """Why a JSON-like value could not be stored (PostgreSQL's jsonb) or sent, or None.

    jsonb refuses NaN/Infinity, NUL characters and unpaired surrogates, all of which a JSON
    parser lets through, and deep nesting overflows the encoders' recursion; caught here they
    are a 400 naming the field instead of a 500.
    """
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"is nested more than {MAX_JSON_DEPTH} levels deep"
        if isinstance(item, str):
            if "\x00" in item:
                return "contains a NUL character (\\u0000)"
            if not item.isascii() and any("\ud800" <= char <= "\udfff" for char in item):
                return "contains an unpaired surrogate"
        elif isinstance(item, float) and not math.isfinite(item):
            return f"contains {item!r}, which JSON cannot represent"
        elif isinstance(item, dict):
            stack.extend((child, depth + 1) for child in (*item.keys(), *item.values()))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return None


def json_storable(value: Any, *, field: str, code: str | None = None) -> Any:
    """``value`` as it will be stored (a round trip through JSON), or InvalidInput naming ``field``."""
    try:
        value = json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{field}: not JSON serializable ({exc}).", code=code, fields={field: [str(exc)]}) from exc
    if problem := json_problem(value):
        raise InvalidInput(f"{field}: not storable as JSON: it {problem}.", code=code, fields={field: [problem]})
    return value


def json_size(value: Any) -> int:
    return len(json.dumps(value, cls=DjangoJSONEncoder).encode())
