from django.db.models import QuerySet

from .models import User


def user_list() -> QuerySet[User]:
    return User.objects.order_by("id")
