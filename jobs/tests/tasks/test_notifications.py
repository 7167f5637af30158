"""send_notification: nobody can make the server email strangers (through the API, as an attacker would)."""

import pytest
from django.test import override_settings

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
