from django.contrib.auth.validators import UnicodeUsernameValidator
from rest_framework import serializers

from taskhub.serializers import StrictFieldsMixin

from .models import User


class UserSerializer(StrictFieldsMixin, serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ("id", "username", "email", "first_name", "last_name", "is_staff", "date_joined", "last_login")
        read_only_fields = ("id", "is_staff", "date_joined", "last_login")
        # Uniqueness is checked case-insensitively by the service, so the model's unique
        # validators go; the username's character rule must stay.
        extra_kwargs = {
            "username": {"validators": [UnicodeUsernameValidator()]},
            "email": {"validators": []},
        }


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
