import django_filters

from taskhub.filters import StrictBooleanFilter

from .models import User


class UserFilter(django_filters.FilterSet):
    is_staff = StrictBooleanFilter()
    is_active = StrictBooleanFilter()

    class Meta:
        model = User
        fields = ("is_staff", "is_active")
