"""Whatever a client sends, the answer is the one JSON error shape, never Django's HTML page."""

import pytest
from django.conf import settings

from conftest import assert_error

pytestmark = pytest.mark.django_db


def test_a_body_over_the_upload_limit_is_a_json_413(user_client):
    body = b'{"celery_task_name": "long_running_task", "args": [' + b"1," * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    body += b"1]}"
    response = user_client.post("/api/v1/jobs/", data=body, content_type="application/json")
    error = assert_error(response, 413, "payload_too_large")
    assert str(settings.DATA_UPLOAD_MAX_MEMORY_SIZE) in error["message"]


def test_a_form_with_more_fields_than_allowed_is_a_json_413(client):
    fields = "&".join(f"field{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = client.post("/admin/login/", data=fields, content_type="application/x-www-form-urlencoded")
    error = assert_error(response, 413, "too_many_fields")
    assert str(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS) in error["message"]


def test_oversized_requests_are_logged_as_warnings_not_errors(user_client, caplog):
    body = b'{"args": [' + b"1," * settings.DATA_UPLOAD_MAX_MEMORY_SIZE + b"1]}"
    user_client.post("/api/v1/jobs/", data=body, content_type="application/json")
    assert not [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("error", ["OperationalError", "InterfaceError"])
def test_a_database_out_of_reach_is_a_json_503_naming_it(user_client, monkeypatch, error, caplog):
    """A web host cut from the database (the many-hosts bed's scenario 4): a clear 503 the client may
    retry, never a 500; logged as a warning naming the cause (Django's request log adds its line for
    every 5xx)."""
    from django import db

    from jobs import views

    def unreachable(*args, **kwargs):
        raise getattr(db, error)("connection timeout expired")

    monkeypatch.setattr(views.JobViewSet, "create", unreachable)
    response = user_client.post("/api/v1/jobs/", {"celery_task_name": "long_running_task"}, format="json")
    error_body = assert_error(response, 503, "database_unavailable")
    assert "database" in error_body["message"]
    assert response["Retry-After"]
    assert [r for r in caplog.records if r.name == "taskhub.errors" and "out of reach" in r.getMessage()]
