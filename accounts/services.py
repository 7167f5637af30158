"""Every write to accounts goes through here."""

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.signing import BadSignature, SignatureExpired, TimestampSigner
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from taskhub.errors import ApplicationError, InvalidInput

from . import mail
from .models import User
from .usernames import is_reserved, skeleton

EMAIL_TOKEN_SALT = "accounts.email-verification"


def _check_not_reserved(username: str) -> None:
    """A reserved name (accounts/usernames.py) or a look-alike of one: the same answer for everyone,
    as the list is public (README), so it reveals no account."""
    if is_reserved(username):
        message = "This username is reserved (or looks like a reserved name); choose another."
        raise InvalidInput(f"username: {message}", code="reserved_username", fields={"username": [message]})


def _check_unique(*, username: str | None, email: str | None, exclude_id: int | None = None) -> None:
    others = User.objects.exclude(pk=exclude_id) if exclude_id else User.objects.all()
    fields = {}
    if username is not None and (
        others.filter(username__iexact=username).exists()
        or others.filter(username_skeleton=skeleton(username)).exists()
    ):
        fields["username"] = ["A user with that username (or one that looks like it) already exists."]
    if email is not None and others.filter(email__iexact=email).exists():
        fields["email"] = ["A user with that email already exists."]
    if fields:
        raise InvalidInput(next(f"{k}: {v[0]}" for k, v in fields.items()), code="duplicate", fields=fields)


def _validate_password(password: str, *, user: User, field: str) -> None:
    try:
        validate_password(password, user=user)
    except ValidationError as exc:
        raise InvalidInput(f"{field}: {exc.messages[0]}", code="weak_password", fields={field: exc.messages}) from exc


def _hash_anyway(password: str) -> None:
    """Hash as a sign-up does, so a refused sign-up takes as long as an accepted one."""
    make_password(password)


@transaction.atomic
def user_register(
    *, username: str, email: str, password: str, verify_url: str, first_name: str = "", last_name: str = ""
) -> User | None:
    """Sign up; None when the username or the address is taken, which the caller must not tell
    apart from a success (the answer to an anonymous caller reveals no account): a mail says it
    instead, to the address given (a taken username) or to its owner (a taken address).

    Malformed input, reserved names and weak passwords are refused (400): they reveal nothing.
    The address starts unverified; a verification mail goes to it (``verify_url``, the endpoint).
    """
    _check_not_reserved(username)
    email = email.strip().lower()
    user = User(username=username, email=email, first_name=first_name, last_name=last_name, pending_email=email)
    _validate_password(password, user=user, field="password")
    owner_of_address = User.objects.filter(email__iexact=email).first()
    if owner_of_address is not None:
        _hash_anyway(password)
        mail.send_registration_attempt(owner_of_address)
        return None
    try:
        _check_unique(username=username, email=None)
    except InvalidInput:
        _hash_anyway(password)
        mail.send_username_unavailable(email=email, username=username)
        return None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # a concurrent sign-up took the name or the address since the check
        return None
    mail.send_verification(user, email=email, token=email_token(user, email), verify_url=verify_url)
    return user


def email_token(user: User, email: str) -> str:
    """A signed, timestamped token saying ``user`` asked for ``email`` (EMAIL_VERIFICATION_MAX_AGE)."""
    return TimestampSigner(salt=EMAIL_TOKEN_SALT).sign_object({"user": user.pk, "email": email})


def _check_current_password(user: User, current_password: str | None) -> None:
    if not current_password:
        message = "Give your current password to change your username."
        raise InvalidInput(
            f"current_password: {message}", code="current_password_required", fields={"current_password": [message]}
        )
    if not user.check_password(current_password):
        raise InvalidInput(
            "current_password: the current password is wrong.",
            code="wrong_password",
            fields={"current_password": ["Wrong password."]},
        )


@transaction.atomic
def user_update(*, user: User, current_password: str | None = None, verify_url: str = "", **changes) -> User:
    """Change your profile. A new username needs the current password and must be neither reserved
    nor look like another user's; a new address is only *pending* until verified (a mail with a
    token goes to it): ``email`` changes in ``user_verify_email``."""
    if "username" in changes:
        if changes["username"] == user.username:
            del changes["username"]
        else:
            _check_current_password(user, current_password)
            _check_not_reserved(changes["username"])
    new_email = changes.pop("email", None)
    if new_email is not None:
        new_email = new_email.strip().lower()
        if new_email == user.email and user.email_verified:
            new_email = None
    _check_unique(username=changes.get("username"), email=new_email, exclude_id=user.pk)
    if new_email is not None:
        changes["pending_email"] = new_email
    for name, value in changes.items():
        setattr(user, name, value)
    user.save(update_fields=list(changes) or None)
    if new_email is not None:
        mail.send_verification(user, email=new_email, token=email_token(user, new_email), verify_url=verify_url)
    return user


def _token_refused(code: str, message: str) -> InvalidInput:
    return InvalidInput(f"token: {message}", code=code, fields={"token": [message]})


@transaction.atomic
def user_verify_email(*, user: User, token: str) -> User:
    """Make the pending address ``user``'s verified ``email``: only with a token signed for this
    user and this pending address, younger than EMAIL_VERIFICATION_MAX_AGE seconds."""
    try:
        claim = TimestampSigner(salt=EMAIL_TOKEN_SALT).unsign_object(token, max_age=settings.EMAIL_VERIFICATION_MAX_AGE)
    except SignatureExpired as exc:
        raise _token_refused(
            "token_expired", "This token has expired; change the address again for a new one."
        ) from exc
    except (BadSignature, ValueError) as exc:
        raise _token_refused("invalid_token", "This is not a verification token.") from exc
    if not isinstance(claim, dict) or claim.get("user") != user.pk:
        raise _token_refused("invalid_token", "This token was not issued to you.")
    email = claim.get("email")
    if not user.pending_email or email != user.pending_email:
        raise _token_refused("token_superseded", "This token is for an address you no longer asked for.")
    if User.objects.exclude(pk=user.pk).filter(email__iexact=email).exists():
        message = "A user with that email already exists."
        raise InvalidInput(f"email: {message}", code="duplicate", fields={"email": [message]})
    user.email, user.pending_email = email, None
    user.email_verified, user.email_verified_at = True, timezone.now()
    user.save(update_fields=["email", "pending_email", "email_verified", "email_verified_at"])
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


def user_service_account(*, username: str | None = None) -> User:
    """The one account (flag ``is_service_account``, never its name) that owns work done on no
    person's behalf, e.g. ``django.tasks`` jobs. Migration 0006 makes it; if it is gone it is made
    again: named ``username`` (default TASKS OWNER) or, when a person holds that name, the first
    free ``<name>-service[-n]``; active, not staff, without a usable password (it never signs in).
    It holds ``jobs.submit_urgent``: the server's own code may enqueue urgent tasks (priority >= 50)."""
    user = User.objects.filter(is_service_account=True).first()
    if user is not None:
        return user
    base = username or settings.TASKS.get("default", {}).get("OPTIONS", {}).get("OWNER", "django-tasks")
    candidates = [base, f"{base}-service", *(f"{base}-service-{n}" for n in range(2, 100))]
    name = next(c for c in candidates if not User.objects.filter(username__iexact=c).exists())
    user = User(username=name, email=f"{name}@service.invalid", is_service_account=True)
    user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # made concurrently by another process
        return User.objects.get(is_service_account=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobs", codename="submit_urgent"))
    return user
