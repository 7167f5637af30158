"""GET /api/v1/task-catalog/: the tasks a job may run, with their parameters as JSON Schema and
their defaults."""

import pytest

from jobs.catalog import catalog
from jobs.tests.factories import LONG_RUNNING_TASK

pytestmark = pytest.mark.django_db

LONG = LONG_RUNNING_TASK
NOTIFY = "jobs.tasks.high_priority_tasks.send_notification"


def test_task_catalog_lists_the_builtin_tasks(user_client):
    response = user_client.get("/api/v1/task-catalog/")
    assert response.status_code == 200
    entries = {entry["name"]: entry for entry in response.json()}
    assert set(entries) == {entry.name for entry in catalog.entries()}
    long_running = entries[LONG]
    assert "app.tasks.common_tasks.long_running_task" in long_running["aliases"]
    assert long_running["parameters"]["properties"]["seconds"]["type"] == "integer"
    assert long_running["default_priority"] == "normal"
    assert entries[NOTIFY]["parameters"]["required"] == ["to", "subject"]
    assert entries[NOTIFY]["queue"] == "high_priority"
