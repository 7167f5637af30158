"""send_notification: nobody can make the server email strangers (through the API, as an attacker would)."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import assert_error
from jobs.models import Job

pytestmark = pytest.mark.django_db

NOTIFY = "send_notification"


def notify(client, *to: str):
    return client.post("/api/v1/jobs/", {"celery_task_name": NOTIFY, "kwargs": {"to": list(to), "subject": "hi"}})


def test_a_user_cannot_email_strangers_and_nothing_is_written(user, user_client):
    error = assert_error(notify(user_client, user.email, "victim@example.org"), 403, code="permission_denied")
    assert "victim@example.org" in error["message"]
    assert not Job.objects.exists()


def test_a_user_may_notify_themselves(user, user_client):
    assert notify(user_client, user.email.upper()).status_code == 201


@override_settings(JOB_NOTIFY_ALLOWED_RECIPIENTS=["ops@example.com", "@team.example.com"])
def test_allowed_recipients_and_domains(user_client):
    assert notify(user_client, "ops@example.com", "Ana@Team.Example.com").status_code == 201
    assert_error(notify(user_client, "ana@evil-team.example.com"), 403, code="permission_denied")


def test_staff_may_notify_anyone(staff_client):
    assert notify(staff_client, "anyone@example.org").status_code == 201


def test_bulk_cannot_smuggle_a_stranger_in(user, user_client):
    items = [{"celery_task_name": NOTIFY, "kwargs": {"to": [address], "subject": "s"}} for address in (user.email,) * 3]
    items.append({"celery_task_name": NOTIFY, "kwargs": {"to": ["victim@example.org"], "subject": "s"}})
    response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items})
    assert_error(response, 403, code="permission_denied")
    assert not Job.objects.exists()


def test_the_mail_relay_reproduction_is_closed(user, user_client, mailoutbox):
    """Found item 3: set your address to an outside one, then mail it. The address stays pending
    (only its own mailbox can verify it), so the server mails it nothing but the verification."""
    assert user_client.patch("/api/v1/users/me/", {"email": "outside@relay.example"}).status_code == 200

    error = assert_error(notify(user_client, "outside@relay.example"), 403, code="permission_denied")

    assert "outside@relay.example" in error["message"]
    assert not Job.objects.exists()
    assert [message.subject for message in mailoutbox] == ["taskhub: verify your e-mail address"]


def test_an_unverified_own_address_is_refused_naming_to(db):
    owner = UserFactory(email_verified=False)
    client = APIClient()
    client.force_authenticate(user=owner)

    error = assert_error(notify(client, owner.email), 400, code="email_unverified", field="kwargs")

    assert "kwargs.to" in error["message"] and "verif" in error["message"]
    assert not Job.objects.exists()


def test_the_daily_recipient_budget(user, user_client, settings):
    """At most JOB_NOTIFY_DAILY_LIMIT (default 50) recipients a user in any 24 hours."""
    assert settings.JOB_NOTIFY_DAILY_LIMIT == 50
    assert notify(user_client, *[user.email] * 30).status_code == 201
    assert notify(user_client, *[user.email] * 20).status_code == 201

    error = assert_error(notify(user_client, user.email), 429, code="notify_daily_limit")

    assert "50" in error["message"]
    assert Job.objects.count() == 2


def test_the_budget_holds_across_a_bulk_request(user, user_client):
    items = [{"celery_task_name": NOTIFY, "kwargs": {"to": [user.email] * 20, "subject": "s"}} for _ in range(3)]

    response = user_client.post("/api/v1/jobs/bulk/", {"jobs": items})

    assert_error(response, 429, code="notify_daily_limit")
    assert not Job.objects.exists()


def test_staff_have_no_budget(staff_client):
    for _ in range(2):
        assert notify(staff_client, *["anyone@example.org"] * 40).status_code == 201
