"""Serializer helpers shared by the apps."""

from rest_framework import serializers


class StrictFieldsMixin:
    """Refuse input keys the serializer does not accept, instead of silently dropping them.

    A client that sends ``status`` or a misspelt field learns about it (400) rather than
    believing the value was stored. ``read_only_names`` lists fields the resource has but
    clients may not set (reported as read-only rather than unknown).
    """

    read_only_names: tuple[str, ...] = ()

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                readonly = set(self.fields) | set(self.read_only_names)
                raise serializers.ValidationError(
                    {name: ["This field is read-only." if name in readonly else "Unknown field."] for name in unknown}
                )
        return super().to_internal_value(data)


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
