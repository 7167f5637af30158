"""A task's parameters as one JSON Schema, and the check of a job's args/kwargs against it.

The schema is derived from the function signature (types, ``Optional``, and the
:class:`Between` / :class:`MaxItems` annotations) or declared by the task. The same schema is
shown by the catalog endpoint and enforced here with jsonschema, so what clients read is what
they get refused by. Problems are explained in words naming the argument (``args[0]:
parameter 'seconds' must be an integer, got str '60'``).
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NoReturn

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.exceptions import SchemaError, best_match

from taskhub.errors import InvalidInput


@dataclass(frozen=True)
class Between:
    """Range constraint for a numeric parameter: ``seconds: Annotated[int, Between(1, 3600)]``."""

    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True)
class MaxItems:
    """Length constraint for a list (``maxItems``) or string (``maxLength``) parameter."""

    limit: int


_JSON_TYPES: dict[Any, str] = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    list: "array",
    dict: "object",
}
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def _annotation_schema(annotation: Any) -> dict[str, Any]:
    """The JSON Schema of one parameter annotation: its type, item type and constraints."""
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
    schema: dict[str, Any] = {}
    json_type = _JSON_TYPES.get(origin or annotation)
    if json_type:
        schema["type"] = [json_type, "null"] if nullable else json_type
    if origin is typing.Literal:
        schema["enum"] = [*typing.get_args(annotation), *([None] if nullable else [])]
    if origin is list and typing.get_args(annotation):
        schema["items"] = _annotation_schema(typing.get_args(annotation)[0])
    for constraint in constraints:
        if isinstance(constraint, Between):
            schema.update({key: value for key, value in vars(constraint).items() if value is not None})
        elif isinstance(constraint, MaxItems):
            schema["maxItems" if json_type == "array" else "maxLength"] = constraint.limit
    return schema


def _signature_schema(parameters: list[inspect.Parameter], hints: dict[str, Any]) -> dict[str, Any]:
    """The object schema of a task's parameters; ``*args`` items go under ``x-var-positional``."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
        "x-positional-order": [p.name for p in parameters if p.kind in _POSITIONAL],
    }
    for parameter in parameters:
        annotated = _annotation_schema(hints.get(parameter.name, Any))
        if parameter.kind is parameter.VAR_KEYWORD:
            schema["additionalProperties"] = annotated or True
        elif parameter.kind is parameter.VAR_POSITIONAL:
            schema["x-var-positional"] = annotated or True
        elif parameter.default is parameter.empty:
            properties[parameter.name] = annotated
            required.append(parameter.name)
        else:
            properties[parameter.name] = {**annotated, "default": parameter.default}
    return schema


def _check_declared(task: str, schema: Any, reserved: frozenset[str]) -> None:
    """Refuse at registration a declared schema that is no JSON Schema or names a reserved parameter."""
    if not isinstance(schema, dict):
        raise ValueError(f"Task {task}: the declared schema must be a JSON object, got {type(schema).__name__}.")
    try:
        Draft202012Validator.check_schema(schema)
        Draft202012Validator.check_schema(schema.get("x-var-positional", True))
    except SchemaError as exc:
        raise ValueError(f"Task {task}: the declared schema is not a valid JSON Schema: {exc.message}") from exc
    if clashes := sorted(reserved & set(schema.get("properties", {}))):
        raise ValueError(
            f"Task {task}: the declared schema names reserved parameter(s) {', '.join(clashes)}: "
            "the task itself is passed as its first argument."
        )


def _is_integer(checker: Any, instance: Any) -> bool:
    """A Python int only: 60.0 would reach ``range()`` as a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


def _is_finite_number(checker: Any, instance: Any) -> bool:
    """JSON has no NaN or Infinity (and PostgreSQL's jsonb refuses them)."""
    return _is_integer(checker, instance) or (isinstance(instance, float) and math.isfinite(instance))


# Draft 2020-12, except that an integer is a Python int (not 1.0) and a number is finite.
_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({"integer": _is_integer, "number": _is_finite_number}),
)

_LIMITS = {
    "minimum": "must be at least {limit}, got {value}",
    "maximum": "must be at most {limit}, got {value}",
    "exclusiveMinimum": "must be greater than {limit}, got {value}",
    "exclusiveMaximum": "must be less than {limit}, got {value}",
    "minItems": "must have at least {limit} items, got {size}",
    "maxItems": "must have at most {limit} items, got {size}",
    "minLength": "must have at least {limit} characters, got {size}",
    "maxLength": "must have at most {limit} characters, got {size}",
    "const": "must be {limit!r}, got {described}",
}


def _article(json_type: str) -> str:
    return f"an {json_type}" if json_type[0] in "aeiou" else f"a {json_type}"


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {repr(value)[:40]}"


def _unexpected(error: ValidationError) -> list[str]:
    """The keys an ``additionalProperties: false`` error is about."""
    named, patterns = error.schema.get("properties", {}), error.schema.get("patternProperties", {})
    return [key for key in error.instance if key not in named and not any(re.search(p, key) for p in patterns)]


def _problem(error: ValidationError, inside: list) -> str:
    """What is wrong with a value at ``inside`` a parameter, in words; jsonschema's own words for
    kinds without a translation."""
    where = "".join(f"item {step} " if isinstance(step, int) else f"key {step!r} " for step in inside)
    kind, limit, value = error.validator, error.validator_value, error.instance
    if kind == "type":
        expected = " or ".join(
            t if t == "null" else _article(t) for t in ([limit] if isinstance(limit, str) else limit)
        )
        problem = f"must be {expected}, " + ("not null" if value is None else f"got {_describe(value)}")
    elif kind in _LIMITS:
        size = len(value) if isinstance(value, list | str | dict) else None
        problem = _LIMITS[kind].format(limit=limit, value=repr(value)[:40], size=size, described=_describe(value))
    elif kind == "enum":
        problem = f"must be one of {', '.join(map(repr, limit))}, got {_describe(value)}"
    elif kind == "required":
        problem = f"is missing the required key {next(key for key in limit if key not in value)!r}"
    elif kind == "items" and limit is False:
        problem = f"must have at most {len(error.schema.get('prefixItems', []))} items, got {len(value)}"
    elif kind == "additionalProperties" and limit is False:
        problem = f"has unknown key(s) {', '.join(map(repr, _unexpected(error)))}"
    else:
        problem = f"is invalid: {error.message}"
    return where + problem


def _fail(where: str, message: str) -> NoReturn:
    field = where.split("[")[0].split(".")[0]
    raise InvalidInput(f"{where}: {message}", code="invalid_arguments", fields={field: [f"{where}: {message}"]})


def _rank(error: ValidationError, origins: dict[str, tuple[str, int]], end: int) -> int:
    """Where in argument order an error is: its parameter's rank; what is missing comes last."""
    if error.absolute_path:
        return origins.get(error.absolute_path[0], ("", end))[1]
    if error.validator == "additionalProperties":
        return min((origins[key][1] for key in _unexpected(error)), default=end)
    return end


@dataclass(frozen=True)
class Parameters:
    """A task's parameters: the JSON Schema shown and enforced, and the signature that binds
    positional args to names, as the task base's ``self.run(*args, **kwargs)`` will."""

    task: str
    schema: dict[str, Any]
    signature: inspect.Signature  # without the task's own first parameter
    reserved: frozenset[str]  # what the task itself is passed as: no kwarg may take these names

    @classmethod
    def of(cls, function: Callable, *, task: str, schema: dict[str, Any] | None = None) -> Parameters:
        """The parameters of ``function(self, ...)``. A declared ``schema`` replaces the derived
        one; it is checked here, so a broken one fails at import time."""
        if not inspect.signature(function).parameters:
            raise TypeError(f"Task {task}: the function must take the task as its first parameter.")
        first, *parameters = inspect.signature(function).parameters.values()
        reserved = frozenset({"self", first.name})
        if schema is None:
            schema = _signature_schema(parameters, typing.get_type_hints(function, include_extras=True))
        else:
            _check_declared(task, schema, reserved)
        return cls(task, schema, inspect.Signature(parameters), reserved)

    @property
    def positional(self) -> list[str]:
        return [p.name for p in self.signature.parameters.values() if p.kind in _POSITIONAL]

    @property
    def var_positional(self) -> str | None:
        return next((p.name for p in self.signature.parameters.values() if p.kind is p.VAR_POSITIONAL), None)

    @cached_property
    def _validators(self) -> tuple[Draft202012Validator, Draft202012Validator]:
        """Built once: one validator for the named parameters, one for each ``*args`` item."""
        item = {"$defs": self.schema.get("$defs", {}), "allOf": [self.schema.get("x-var-positional", True)]}
        return _Validator(self.schema), _Validator(item)

    def validate(self, args: list, kwargs: dict) -> None:
        """Raise InvalidInput naming the argument when ``args``/``kwargs`` don't fit.

        Of several problems the first in argument order is reported (args, kwargs, then what is
        missing), so the answer does not depend on how jsonschema walks the schema.
        """
        if not isinstance(args, list):
            raise InvalidInput("args: must be a JSON array.", fields={"args": ["Must be a JSON array."]})
        if not isinstance(kwargs, dict):
            raise InvalidInput("kwargs: must be a JSON object.", fields={"kwargs": ["Must be a JSON object."]})
        bound, origins = self._bind(args, kwargs)
        named, items = self._validators
        extras = range(len(self.positional), len(args))
        found = [(_rank(error, origins, len(args) + len(kwargs)), error) for error in named.iter_errors(bound)]
        found += [(index, error) for index in extras for error in items.iter_errors(args[index])]
        if found:
            rank = min(rank for rank, _ in found)
            self._explain(
                best_match(error for r, error in found if r == rank), origins, rank if rank in extras else None
            )
        try:  # a declared schema may allow what the function cannot take
            self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            _fail("args" if self.positional else "kwargs", f"{self.task}: {exc}")

    def bind(self, args: list, kwargs: dict) -> dict[str, Any]:
        """Valid ``args``/``kwargs`` by parameter name, defaults filled in (as the call will see them)."""
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return dict(bound.arguments)

    def _bind(self, args: list, kwargs: dict) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
        """Name the arguments as the call will; each name's origin (``args[0]``) and rank in argument order."""
        positional = self.positional
        if len(args) > len(positional) and self.var_positional is None:
            names = ", ".join(positional) or "none"
            message = f"{self.task} takes at most {len(positional)} positional argument(s) ({names}), got {len(args)}"
            _fail("args", message)
        bound = dict(zip(positional, args, strict=False))
        origins = {name: (f"args[{index}]", index) for index, name in enumerate(bound)}
        for index, (key, value) in enumerate(kwargs.items()):
            if not isinstance(key, str) or not key.isidentifier():
                _fail("kwargs", f"'{key}' is not a valid parameter name")
            if key in self.reserved:
                _fail(f"kwargs.{key}", f"'{key}' is a reserved name: the task itself is passed as its first argument")
            if key in bound:
                _fail(f"kwargs.{key}", f"parameter '{key}' was also given in args")
            bound[key] = value
            origins[key] = (f"kwargs.{key}", len(args) + index)
        return bound, origins

    def _explain(self, error: ValidationError, origins: dict[str, tuple[str, int]], extra: int | None) -> NoReturn:
        """Raise the InvalidInput for one jsonschema error, naming the argument at fault; ``extra``
        is the index in args of a ``*args`` item (validated on its own)."""
        path = list(error.absolute_path)
        if extra is not None:
            _fail(f"args[{extra}]", f"parameter '{self.var_positional}' {_problem(error, path)}")
        if path:
            _fail(origins[path[0]][0], f"parameter '{path[0]}' {_problem(error, path[1:])}")
        root = "args" if self.positional else "kwargs"
        if error.validator == "required":
            missing = next(key for key in error.validator_value if key not in error.instance)
            _fail(root, f"missing required parameter '{missing}' for {self.task}")
        if error.validator == "additionalProperties" and (unknown := _unexpected(error)):
            key = min(unknown, key=lambda name: origins[name][1])
            allowed = ", ".join(self.schema.get("properties", {})) or "none"
            _fail(origins[key][0], f"unknown parameter '{key}' for {self.task} (parameters: {allowed})")
        _fail(root, f"arguments do not fit {self.task}: {error.message}")


def describe_schema(schema: Any, *, required: bool = False) -> str:
    """One parameter's JSON Schema in words, as every page and command shows it:
    ``integer, 0 to 14400, default 10``; ``array of string, required, at most 100 items``."""
    if not isinstance(schema, dict):
        return "any JSON value" + (", required" if required else "")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    kind = " or ".join(types) or "any JSON value"
    items = schema.get("items")
    if "array" in types and isinstance(items, dict):
        described = describe_schema(items)
        kind = kind.replace("array", f"array of {described if ', ' not in described else f'({described})'}", 1)
    words = [kind]
    if required:
        words.append("required")
    if "enum" in schema:
        words.append("one of " + ", ".join(_json_text(value) for value in schema["enum"]))
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        words.append(f"{low:g} to {high:g}")
    elif low is not None:
        words.append(f"at least {low:g}")
    elif high is not None:
        words.append(f"at most {high:g}")
    for key, unit in (("minItems", "items"), ("minLength", "characters")):
        if key in schema:
            words.append(f"at least {schema[key]} {unit}")
    for key, unit in (("maxItems", "items"), ("maxLength", "characters")):
        if key in schema:
            words.append(f"at most {schema[key]} {unit}")
    if "default" in schema:
        words.append(f"default {_json_text(schema['default'])}")
    return ", ".join(words)


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
