"""Serializer helpers shared by the apps."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

_STRING_FIELDS = (
    serializers.CharField,
    serializers.DateTimeField,
    serializers.DateField,
    serializers.TimeField,
    serializers.DurationField,
    serializers.UUIDField,
)


def json_type_problem(field: serializers.Field, value) -> str | None:
    """Why ``value`` is not of the JSON type the schema publishes for ``field``, or None.

    DRF coerces: a CharField takes 123 as "123", an IntegerField "3" as 3, a BooleanField "yes" as
    True. The OpenAPI document says string, integer, boolean, so that is what the API takes.
    """
    if value is None:
        return None  # the field's allow_null decides
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be a boolean (true or false)."
    if isinstance(field, serializers.IntegerField):
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        return None if whole and not isinstance(value, bool) else "Must be an integer."
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number else "Must be a number."
    if isinstance(field, serializers.MultipleChoiceField):
        return None
    if isinstance(field, _STRING_FIELDS) or (
        isinstance(field, serializers.ChoiceField) and all(isinstance(key, str) for key in field.choices)
    ):
        return None if isinstance(value, str) else "Must be a string."
    return None


class StrictFieldsMixin:
    """Refuse input keys the serializer does not accept, instead of silently dropping them, and
    values of another JSON type than the field's (``json_type_problem``).

    A client that sends ``status`` or a misspelt field learns about it (400) rather than
    believing the value was stored. ``read_only_names`` lists fields the resource has but
    clients may not set (reported as read-only rather than unknown).
    """

    read_only_names: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name: field for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - set(writable))
            if unknown:
                readonly = set(self.fields) | set(self.read_only_names)
                raise serializers.ValidationError(
                    {name: ["This field is read-only." if name in readonly else "Unknown field."] for name in unknown}
                )
            wrong_types = {
                name: [problem]
                for name, field in writable.items()
                if name in data and (problem := json_type_problem(field, data[name]))
            }
            if wrong_types:
                raise serializers.ValidationError(wrong_types)
        return super().to_internal_value(data)


@extend_schema_field({"type": "array", "items": {}})
class JSONArrayField(serializers.JSONField):
    """A JSON array (``TaskArgumentsMixin`` checks it), so documented: not any JSON value, not null."""


@extend_schema_field({"type": "object", "additionalProperties": {}})
class JSONObjectField(serializers.JSONField):
    """A JSON object (``TaskArgumentsMixin`` checks it), so documented: not any JSON value, not null."""


class TaskArgumentsMixin:
    """``args`` must be a JSON array and ``kwargs`` an object (their contents: the catalog's schema)."""

    def validate_args(self, value):
        if not isinstance(value, list):
            raise serializers.ValidationError("Must be a JSON array.")
        return value

    def validate_kwargs(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value
