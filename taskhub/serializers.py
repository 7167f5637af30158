"""Serializer helpers shared by the apps."""

from rest_framework import serializers


class StrictFieldsMixin:
    """Refuse input keys the serializer does not accept, instead of silently dropping them.

    A client that sends ``status`` or a misspelt field learns about it (400) rather than
    believing the value was stored.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            writable = {name for name, field in self.fields.items() if not field.read_only}
            unknown = sorted(set(data) - writable)
            if unknown:
                readonly = set(self.fields)
                raise serializers.ValidationError(
                    {
                        name: ["This field is read-only." if name in readonly else "Unknown field."]
                        for name in unknown
                    }
                )
        return super().to_internal_value(data)
