from django.db import connection
from django.db.models import QuerySet

from .models import User


def user_list() -> QuerySet[User]:
    """The people: the service account (owner of django.tasks jobs) is no one to list or manage."""
    return User.objects.filter(is_service_account=False).order_by("id")


_FIELDS = User._meta.concrete_fields
_NAMES = [field.attname for field in _FIELDS]
_BY_ID = (
    f"SELECT {', '.join(connection.ops.quote_name(field.column) for field in _FIELDS)} "
    f'FROM "{User._meta.db_table}" WHERE "{User._meta.pk.column}" = %s'
)


def user_by_id(user_id: int) -> User | None:
    """The user with this id, or None: what every authenticated API request looks up.

    On PostgreSQL one statement written once and the row made into a User as the ORM makes it
    (``Model.from_db``; none of User's columns needs a converter there): building and compiling
    ``User.objects.get(pk=…)`` at every request cost more than the query. Elsewhere (SQLite, the
    embedded default, converts its dates and booleans) the ORM.
    """
    if connection.vendor != "postgresql":
        return User.objects.filter(pk=user_id).first()
    with connection.cursor() as cursor:
        cursor.execute(_BY_ID, [user_id])
        row = cursor.fetchone()
    return None if row is None else User.from_db(connection.alias, _NAMES, row)
