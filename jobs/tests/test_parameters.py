"""A parameter's JSON Schema in words (jobs.parameters.describe_schema): the one phrasing the submit
page, the schedule page and ``manage.py tasks`` show."""

import pytest

from jobs.parameters import describe_schema


@pytest.mark.parametrize(
    ("schema", "required", "words"),
    [
        ({"type": "integer", "minimum": 0, "maximum": 14400, "default": 10}, False, "integer, 0 to 14400, default 10"),
        ({"type": "number", "minimum": 0.5}, False, "number, at least 0.5"),
        ({"type": "integer", "maximum": 9}, True, "integer, required, at most 9"),
        (
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 100},
            True,
            "array of string, required, at least 1 items, at most 100 items",
        ),
        (
            {"type": "array", "items": {"type": "string", "maxLength": 5}},
            False,
            "array of (string, at most 5 characters)",
        ),
        ({"type": ["string", "null"], "maxLength": 200}, False, "string or null, at most 200 characters"),
        ({"enum": ["a", "b", None], "default": "a"}, False, 'any JSON value, one of "a", "b", null, default "a"'),
        (True, True, "any JSON value, required"),
        ({}, False, "any JSON value"),
    ],
)
def test_a_schema_in_words(schema, required, words):
    assert describe_schema(schema, required=required) == words
