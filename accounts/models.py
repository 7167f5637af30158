from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """taskhub's user: Django's user with a unique (case-insensitive) email."""

    email = models.EmailField("email address", unique=True)

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"
        constraints = [
            models.UniqueConstraint(models.functions.Lower("email"), name="accounts_user_email_ci_unique"),
        ]
