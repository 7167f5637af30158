"""Every write to accounts goes through here."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from taskhub.errors import ApplicationError, InvalidInput

from .models import User


def _check_unique(*, username: str | None, email: str | None, exclude_id: int | None = None) -> None:
    others = User.objects.exclude(pk=exclude_id) if exclude_id else User.objects.all()
    fields = {}
    if username is not None and others.filter(username__iexact=username).exists():
        fields["username"] = ["A user with that username already exists."]
    if email is not None and others.filter(email__iexact=email).exists():
        fields["email"] = ["A user with that email already exists."]
    if fields:
        raise InvalidInput(next(f"{k}: {v[0]}" for k, v in fields.items()), code="duplicate", fields=fields)


def _validate_password(password: str, *, user: User, field: str) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.messages[0]}", code="weak_password", fields={field: exc.messages}) from exc


@transaction.atomic
def user_register(*, username: str, email: str, password: str, first_name: str = "", last_name: str = "") -> User:
    _check_unique(username=username, email=email)
    user = User(username=username, email=email.strip().lower(), first_name=first_name, last_name=last_name)
    _validate_password(password, user=user, field="password")
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a concurrent sign-up took the name or email since the check
        _check_unique(username=username, email=email)
        raise
    return user


@transaction.atomic
def user_update(*, user: User, **changes) -> User:
    if "email" in changes:
        changes["email"] = changes["email"].strip().lower()
    _check_unique(username=changes.get("username"), email=changes.get("email"), exclude_id=user.pk)
    for name, value in changes.items():
        setattr(user, name, value)
    user.save(update_fields=list(changes) or None)
    return user


def _blacklist_all(user: User) -> int:
    """Blacklist every refresh token the user still holds (signs them out everywhere)."""
    outstanding = OutstandingToken.objects.filter(user=user).exclude(blacklistedtoken__isnull=False)
    return len(
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in outstanding], ignore_conflicts=True
        )
    )


@transaction.atomic
def user_change_password(*, user: User, old_password: str, new_password: str) -> User:
    if not user.check_password(old_password):
        raise InvalidInput(
            "old_password: the current password is wrong.",
            code="wrong_password",
            fields={"old_password": ["Wrong password."]},
        )
    _validate_password(new_password, user=user, field="new_password")
    user.set_password(new_password)
    user.save(update_fields=["password"])
    _blacklist_all(user)
    return user


def user_logout(*, refresh: str) -> None:
    """Blacklist a refresh token so it can no longer be used."""
    try:
        RefreshToken(refresh).blacklist()
    except TokenError as exc:
        raise ApplicationError(f"refresh: {exc}", code="token_not_valid", status_code=401) from exc


def user_service_account(*, username: str) -> User:
    """The account that owns work done on no person's behalf (e.g. ``django.tasks`` jobs), created
    on first use: active, not staff, without a usable password (it never logs in)."""
    user = User.objects.filter(username=username).first()
    if user is not None:
        return user
    user = User(username=username, email=f"{username}@service.invalid")
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # created concurrently by another process
        return User.objects.get(username=username)
    return user
