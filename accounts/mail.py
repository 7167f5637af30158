"""The mails accounts sends (through EMAIL_BACKEND, from DEFAULT_FROM_EMAIL): an address to verify,
and the answers to a sign-up that could not be made, which go to a mailbox instead of to the
anonymous caller (so the API's answer reveals no account)."""

from django.conf import settings
from django.core.mail import send_mail

from .models import User


def send_verification(user: User, *, email: str, token: str, verify_url: str) -> None:
    hours = settings.EMAIL_VERIFICATION_MAX_AGE // 3600
    send_mail(
        subject="taskhub: verify your e-mail address",
        message=(
            f"Hello {user.username},\n\n"
            f"Someone (you, we hope) asked to use {email} for the taskhub account {user.username}.\n"
            f"To confirm, signed in as {user.username}, POST this token to {verify_url}\n"
            f'as {{"token": "<the token>"}} within {hours} hours:\n\n{token}\n\n'
            "If it was not you, ignore this mail: nothing changes without the token."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[email],
    )


def send_registration_attempt(owner: User) -> None:
    send_mail(
        subject="taskhub: someone tried to sign up with your address",
        message=(
            f"Hello {owner.username},\n\n"
            f"Someone tried to make a new taskhub account with {owner.email}, which is already yours.\n"
            "No account was made. If it was you, sign in with your username instead; if you forgot\n"
            "your password, ask an administrator. Otherwise ignore this mail."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[owner.email],
    )


def send_username_unavailable(*, email: str, username: str) -> None:
    send_mail(
        subject="taskhub: that username is not available",
        message=(
            f"Someone (you, we hope) tried to make a taskhub account named {username} with this address.\n"
            "That username is taken (or looks like one that is), so no account was made: sign up again\n"
            "with another username."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[email],
    )
