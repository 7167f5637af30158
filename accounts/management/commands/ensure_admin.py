"""Make sure an admin account exists (used by `make run`)."""

import os
import secrets

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User


class Command(BaseCommand):
    help = (
        "Create the superuser USERNAME (default: admin) if no superuser exists. The password comes "
        "from TASKHUB_ADMIN_PASSWORD, or is generated and printed once."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("TASKHUB_ADMIN_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("TASKHUB_ADMIN_EMAIL", "admin@localhost"))

    @transaction.atomic
    def handle(self, *args, username: str, email: str, **options):
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin account exists already.")
            return
        if User.objects.filter(username__iexact=username).exists():
            raise CommandError(
                f"User {username!r} exists but is not a superuser; pass --username to pick another name."
            )
        password = os.environ.get("TASKHUB_ADMIN_PASSWORD") or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=email, password=password)
        if os.environ.get("TASKHUB_ADMIN_PASSWORD"):
            self.stdout.write(
                self.style.SUCCESS(f"Created admin account {username!r} (password from TASKHUB_ADMIN_PASSWORD).")
            )
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Created admin account {username!r} with password: {password}\n"
                    "It is shown only this once; change it in the admin."
                )
            )
