"""Make sure an admin account exists, and say how to log in (used by `make run`)."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User


class Command(BaseCommand):
    help = (
        "Create the superuser USERNAME (default: admin) if no superuser exists, and print one line on how to "
        "log in. The password comes from TASKHUB_ADMIN_PASSWORD, or is generated and kept in "
        "var/admin_password (mode 600) so that it can be looked up later."
    )

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("TASKHUB_ADMIN_USERNAME", "admin"))
        parser.add_argument("--email", default=os.environ.get("TASKHUB_ADMIN_EMAIL", "admin@localhost"))
        parser.add_argument(
            "--password-file",
            type=Path,
            default=Path(settings.VAR_DIR) / "admin_password",
            help="Where a generated password is kept (default: var/admin_password).",
        )

    @transaction.atomic
    def handle(self, *args, username: str, email: str, password_file: Path, **options):
        admin = User.objects.filter(is_superuser=True).order_by("pk").first()
        if admin is not None:
            self.stdout.write(self._how_to_log_in(admin, password_file))
            return
        if User.objects.filter(username__iexact=username).exists():
            raise CommandError(
                f"User {username!r} exists but is not a superuser; pass --username to pick another name."
            )
        given = os.environ.get("TASKHUB_ADMIN_PASSWORD")
        password = given or secrets.token_urlsafe(12)
        User.objects.create_superuser(username=username, email=email, password=password)
        if given:
            self.stdout.write(self.style.SUCCESS(f"Admin {username!r} created (password from TASKHUB_ADMIN_PASSWORD)."))
            return
        password_file.parent.mkdir(parents=True, exist_ok=True)
        password_file.touch(mode=0o600)
        password_file.write_text(password + "\n")
        self.stdout.write(
            self.style.SUCCESS(f"Admin {username!r} created with password {password} (kept in {password_file}).")
        )

    def _how_to_log_in(self, admin: User, password_file: Path) -> str:
        name = admin.get_username()
        if password_file.is_file() and admin.check_password(password_file.read_text().strip()):
            return f"Admin {name!r}: password in {password_file}."
        return (
            f"Admin {name!r}: password as you set it. To reset it: python manage.py changepassword {name} "
            "(or set TASKHUB_ADMIN_PASSWORD before the first run)."
        )
