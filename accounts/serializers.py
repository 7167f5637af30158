from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from taskhub.serializers import StrictFieldsMixin

from .models import User


class UserSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = User
        fields = (
            "id",
            "username",
            "email",
            "email_verified",
            "email_verified_at",
            "pending_email",
            "first_name",
            "last_name",
            "is_staff",
            "date_joined",
            "last_login",
        )
        read_only_fields = (
            "id",
            "email_verified",
            "email_verified_at",
            "pending_email",
            "is_staff",
            "date_joined",
            "last_login",
        )
        # Uniqueness is checked case-insensitively by the service, so the model's unique
        # validators go; the username's character rule must stay.
        extra_kwargs = {
            "username": {"validators": [UnicodeUsernameValidator()]},
            "email": {"validators": []},
        }


class UserUpdateSerializer(UserSerializer):
    """PATCH /users/me/: a new ``email`` is pending until verified; a new ``username`` needs
    ``current_password``."""

    current_password = serializers.CharField(
        write_only=True, required=False, max_length=128, style={"input_type": "password"}
    )

    class Meta(UserSerializer.Meta):
        fields = (*UserSerializer.Meta.fields, "current_password")


class EmailVerifySerializer(StrictFieldsMixin, serializers.Serializer):
    token = serializers.CharField(max_length=1000, help_text="The token of the verification mail.")


class RegistrationAcceptedSerializer(serializers.Serializer):
    detail = serializers.CharField()


class RegisterSerializer(StrictFieldsMixin, serializers.Serializer):
    username = serializers.RegexField(r"^[\w.@+-]+\Z", max_length=150)
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    first_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)
    last_name = serializers.CharField(max_length=150, required=False, default="", allow_blank=True)


class PasswordChangeSerializer(StrictFieldsMixin, serializers.Serializer):
    old_password = serializers.CharField(write_only=True, max_length=128)
    new_password = serializers.CharField(write_only=True, max_length=128)


class LogoutSerializer(StrictFieldsMixin, serializers.Serializer):
    refresh = serializers.CharField()
