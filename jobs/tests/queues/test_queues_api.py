"""The queue control API: /api/v1/queues/, /api/v1/rate-limits/, /api/v1/queue-changes/."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.tests.factories import UserFactory
from conftest import assert_error
from jobs.models import QueueControl, QueueControlChange, RateLimit, RateLimitSlot
from jobs.tests.factories import LONG_RUNNING_TASK, make, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def controller(db):
    """A staff member allowed to steer queues (the jobs.change_queuecontrol permission)."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="change_queuecontrol", content_type__app_label="jobs"))
    return user


@pytest.fixture
def controller_client(controller) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=controller)
    return client


@pytest.fixture
def nothing_changed():
    """``with nothing_changed(): ...``: no pause, no rate limit, no audit line was written."""

    @contextmanager
    def check():
        def state():
            return (
                list(QueueControl.objects.values_list("name", "paused")),
                list(RateLimit.objects.values_list("scope", "name", "limit", "period")),
                RateLimitSlot.objects.count(),
                QueueControlChange.objects.count(),
            )

        before = state()
        yield
        assert state() == before

    return check


def queue(client, name="default") -> dict:
    response = client.get(f"/api/v1/queues/{name}/")
    assert response.status_code == 200, response.content
    return response.json()


# --- who may -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/v1/queues/", "/api/v1/queues/default/", "/api/v1/rate-limits/", "/api/v1/queue-changes/"]
)
def test_users_who_are_not_staff_get_a_403_and_anonymous_a_401(user_client, api_client, path):
    assert_error(user_client.get(path), 403, "permission_denied")
    assert_error(api_client.get(path), 401, "not_authenticated")


def test_staff_read_but_changing_needs_the_queue_control_permission(staff_client, nothing_changed):
    assert [q["name"] for q in staff_client.get("/api/v1/queues/").json()] == [
        "high_priority",
        "default",
        "low_priority",
    ]
    with nothing_changed():
        body = assert_error(staff_client.post("/api/v1/queues/default/pause/"), 403, "permission_denied")
        assert "jobs.change_queuecontrol" in body["message"]
        assert_error(staff_client.patch("/api/v1/queues/default/", {"rate_limit": {"limit": 1, "period": 1}}), 403)
        assert_error(staff_client.post("/api/v1/rate-limits/", {"queue": "default", "limit": 1, "period": 1}), 403)


def test_non_staff_cannot_pause_even_with_the_permission(nothing_changed):
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="change_queuecontrol"))
    client = APIClient()
    client.force_authenticate(user=user)
    with nothing_changed():
        assert_error(client.post("/api/v1/queues/default/pause/"), 403, "permission_denied")


# --- queues --------------------------------------------------------------------------------------


def test_list_shows_pause_limit_and_counts_of_every_users_jobs(controller_client):
    make(), make(dispatched_at="2026-01-01T00:00:00Z"), make("running"), make("succeeded"), make(priority="low")
    queues = {q["name"]: q for q in controller_client.get("/api/v1/queues/").json()}
    assert queues["default"] == {
        "name": "default",
        "paused": False,
        "paused_at": None,
        "paused_by": None,
        "reason": "",
        "rate_limit": None,
        "pending": 2,
        "unsent": 1,
        "held": 0,
        "running": 1,
        "oldest_pending_seconds": queues["default"]["oldest_pending_seconds"],
    }
    assert 0 <= queues["default"]["oldest_pending_seconds"] < 60
    assert (queues["low_priority"]["pending"], queues["high_priority"]["pending"]) == (1, 0)


def test_pause_and_resume_are_recorded_with_who_when_and_where(controller, controller_client):
    body = controller_client.post("/api/v1/queues/default/pause/", {"reason": "partner API down"}).json()
    assert body["paused"] is True and body["paused_by"] == controller.username and body["reason"] == "partner API down"
    assert body["paused_at"]
    again = controller_client.post("/api/v1/queues/default/pause/")  # already paused: no change, no line
    assert again.status_code == 200 and again.json()["paused"] is True
    resumed = controller_client.post("/api/v1/queues/default/resume/").json()
    assert resumed["paused"] is False and resumed["sent"] == 0 and resumed["paused_by"] is None
    changes = controller_client.get("/api/v1/queue-changes/?queue=default").json()["results"]
    assert [(c["action"], c["source"], c["actor"], c["scope"], c["name"]) for c in changes] == [
        ("resumed", "api", controller.username, "queue", "default"),
        ("paused", "api", controller.username, "queue", "default"),
    ]
    assert changes[1]["reason"] == "partner API down" and changes[1]["before"] == {"paused": False}
    assert changes[1]["after"] == {"paused": True} and changes[1]["at"]


def test_held_jobs_and_the_oldest_pending_age(controller_client):
    """Held: pending jobs that may not start now (the queue paused, or a run_at ahead: a rate limit's
    deferral, a retry's backoff). The oldest pending age counts from when the oldest due job became due."""
    now = timezone.now()
    make(created_at=now - timedelta(seconds=90))
    make(created_at=now - timedelta(hours=2), run_at=now + timedelta(minutes=5))  # deferred: held
    make(created_at=now - timedelta(hours=1), run_at=now - timedelta(seconds=30))  # due 30 s ago
    make("running")
    body = queue(controller_client)
    assert (body["pending"], body["held"], body["running"]) == (3, 1, 1)
    assert 90 <= body["oldest_pending_seconds"] < 150
    controller_client.post("/api/v1/queues/default/pause/", {"reason": "deploy"})
    body = queue(controller_client)
    assert (body["pending"], body["held"], body["running"]) == (3, 3, 1)
    low = queue(controller_client, "low_priority")
    assert (low["pending"], low["held"], low["oldest_pending_seconds"]) == (0, 0, None)


@pytest.mark.parametrize(
    "body,message",
    [
        ({"reason": "x" * 501}, "no more than 500"),
        ({"reason": 42}, "Must be a string"),
        ({"reason": ["deploy"]}, "Must be a string"),
        ({"reason": None}, "null"),
        ({"why": "deploy"}, "Unknown field"),
    ],
)
@pytest.mark.parametrize("action", ["pause", "resume"])
def test_a_bad_reason_is_a_400_naming_the_field(controller_client, nothing_changed, body, message, action):
    if action == "resume":
        controller_client.post("/api/v1/queues/default/pause/")
    with nothing_changed():
        response = controller_client.post(f"/api/v1/queues/default/{action}/", body, format="json")
        field = next(iter(body))
        error = assert_error(response, 400, field=field)
    assert error["message"].startswith(f"{field}:") and message in str(error["fields"][field])


def test_pausing_touches_no_running_job(controller_client):
    running = make("running")
    before = snapshot(running)
    controller_client.post("/api/v1/queues/default/pause/")
    assert snapshot(running) == before


@pytest.mark.parametrize("method,suffix", [("get", ""), ("patch", ""), ("post", "pause/"), ("post", "resume/")])
def test_an_unknown_queue_is_a_404_naming_it(controller_client, nothing_changed, method, suffix):
    with nothing_changed():
        body = None if method == "get" else {"rate_limit": None}
        response = getattr(controller_client, method)(f"/api/v1/queues/nope/{suffix}", body, format="json")
        error = assert_error(response, 404, "unknown_queue")
    assert "nope" in error["message"] and "default" in error["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"rate_limit": {"limit": -5, "period": 10}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 0, "period": 10}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5, "period": 0}}, "rate_limit.period"),
        ({"rate_limit": {"limit": 5, "period": -1}}, "rate_limit.period"),
        ({"rate_limit": {"limit": 5}}, "rate_limit.period"),
        ({"rate_limit": {"limit": "many", "period": 10}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 10_001, "period": 10}}, "rate_limit.limit"),
        ({"rate_limit": {"limit": 5, "period": 10, "burst": 2}}, "rate_limit.burst"),
        ({"rate_limit": {"limit": 5, "period": 10}, "paused": True}, "paused"),
    ],
)
def test_a_bad_rate_limit_is_a_400_naming_the_field(controller_client, nothing_changed, body, field):
    with nothing_changed():
        response = controller_client.patch("/api/v1/queues/default/", body, format="json")
        error = assert_error(response, 400, field=field)
    assert error["message"].startswith(f"{field}:")


@pytest.mark.parametrize("body", [{}, {"reason": "nothing to say"}])
def test_a_patch_without_rate_limit_changes_nothing(controller_client, nothing_changed, body):
    """Every key of a PATCH is optional (the document says so): without rate_limit there is nothing to
    change, so the queue comes back as it is (no audit line)."""
    with nothing_changed():
        response = controller_client.patch("/api/v1/queues/default/", body, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["rate_limit"]) == ("default", None)


def test_patch_sets_replaces_and_clears_a_queues_rate_limit(controller_client):
    body = controller_client.patch("/api/v1/queues/default/", {"rate_limit": {"limit": 5, "period": 10}}).json()
    assert body["rate_limit"] == {"limit": 5, "period": 10}
    assert RateLimitSlot.objects.filter(rate_limit__name="default").count() == 5
    body = controller_client.patch("/api/v1/queues/default/", {"rate_limit": {"limit": 3, "period": 60}}).json()
    assert body["rate_limit"] == {"limit": 3, "period": 60}
    assert RateLimitSlot.objects.filter(rate_limit__name="default").count() == 3
    body = controller_client.patch("/api/v1/queues/default/", {"rate_limit": None}, format="json").json()
    assert body["rate_limit"] is None and not RateLimit.objects.exists() and not RateLimitSlot.objects.exists()
    changes = controller_client.get("/api/v1/queue-changes/").json()["results"]
    assert [(c["action"], c["before"], c["after"]) for c in changes] == [
        ("limit_cleared", {"limit": 3, "period": 60}, None),
        ("limit_set", {"limit": 5, "period": 10}, {"limit": 3, "period": 60}),
        ("limit_set", None, {"limit": 5, "period": 10}),
    ]


# --- rate limits ---------------------------------------------------------------------------------


def test_rate_limits_of_queues_and_tasks(controller, controller_client):
    created = controller_client.post("/api/v1/rate-limits/", {"task": "long_running_task", "limit": 2, "period": 30})
    assert created.status_code == 201, created.content
    limit = created.json()
    assert limit["scope"] == "task" and limit["task"] == LONG_RUNNING_TASK and limit["queue"] is None
    assert (limit["limit"], limit["period"], limit["updated_by"]) == (2, 30, controller.username)
    replaced = controller_client.post("/api/v1/rate-limits/", {"task": LONG_RUNNING_TASK, "limit": 4, "period": 30})
    assert replaced.status_code == 200 and replaced.json()["id"] == limit["id"] and replaced.json()["limit"] == 4
    queue_limit = controller_client.post("/api/v1/rate-limits/", {"queue": "low_priority", "limit": 1, "period": 5})
    assert queue_limit.status_code == 201 and queue_limit.json()["queue"] == "low_priority"
    assert [(x["scope"], x["limit"]) for x in controller_client.get("/api/v1/rate-limits/").json()] == [
        ("queue", 1),
        ("task", 4),
    ]
    assert queue(controller_client, "low_priority")["rate_limit"] == {"limit": 1, "period": 5}
    assert controller_client.delete(f"/api/v1/rate-limits/{limit['id']}/").status_code == 204
    assert_error(controller_client.get(f"/api/v1/rate-limits/{limit['id']}/"), 404, "not_found")
    task_changes = controller_client.get("/api/v1/queue-changes/?task=long_running_task").json()["results"]
    assert [c["action"] for c in task_changes] == ["limit_cleared", "limit_set", "limit_set"]


@pytest.mark.parametrize(
    "body,field,code",
    [
        ({"queue": "nope", "limit": 5, "period": 10}, "queue", "unknown_queue"),
        ({"task": "nope", "limit": 5, "period": 10}, "task", "unknown_task"),
        ({"queue": "default", "limit": -5, "period": 10}, "limit", "invalid"),
        ({"queue": "default", "limit": 5, "period": 0}, "period", "invalid"),
        ({"queue": "default", "limit": 5, "period": 86_401}, "period", "invalid"),
        ({"limit": 5, "period": 10}, "queue", "invalid"),
        ({"queue": "default", "task": "long_running_task", "limit": 5, "period": 10}, "task", "invalid"),
        ({"queue": "default", "limit": 5, "period": 10, "scope": "task"}, "scope", "invalid"),
    ],
)
def test_a_bad_rate_limit_request_is_a_400_naming_the_field(controller_client, nothing_changed, body, field, code):
    with nothing_changed():
        assert_error(controller_client.post("/api/v1/rate-limits/", body, format="json"), 400, code, field=field)


def test_an_unknown_rate_limit_is_a_404(controller_client, nothing_changed):
    with nothing_changed():
        assert_error(controller_client.delete("/api/v1/rate-limits/999/"), 404, "not_found")


# --- the audit trail -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query,field,code",
    [
        ("queue=nope", "queue", "unknown_queue"),
        ("task=nope", "task", "unknown_task"),
        ("action=x", "action", "invalid"),
    ],
)
def test_a_bad_audit_filter_is_a_400_naming_it(controller_client, query, field, code):
    assert_error(controller_client.get(f"/api/v1/queue-changes/?{query}"), 400, code, field=field)


def test_audit_filters(controller_client):
    controller_client.post("/api/v1/queues/default/pause/")
    controller_client.post("/api/v1/queues/low_priority/pause/")
    controller_client.post("/api/v1/queues/low_priority/resume/")
    assert len(controller_client.get("/api/v1/queue-changes/").json()["results"]) == 3
    assert len(controller_client.get("/api/v1/queue-changes/?queue=low_priority").json()["results"]) == 2
    paused = controller_client.get("/api/v1/queue-changes/?action=paused").json()["results"]
    assert [c["name"] for c in paused] == ["low_priority", "default"]


def test_every_audit_line_says_what_changed_in_words(controller_client):
    controller_client.post("/api/v1/queues/default/pause/", {"reason": "deploy"})
    controller_client.post("/api/v1/queues/default/resume/")
    controller_client.patch("/api/v1/queues/default/", {"rate_limit": {"limit": 10, "period": 60}}, format="json")
    controller_client.patch("/api/v1/queues/default/", {"rate_limit": None}, format="json")
    changes = controller_client.get("/api/v1/queue-changes/?queue=default").json()["results"]
    assert [c["summary"] for c in changes] == [
        "rate limit cleared (was 10/min)",
        "rate limit set to 10/min (was none)",
        "resumed",
        "paused (reason: deploy)",
    ]


@pytest.mark.parametrize(
    ("query", "field"),
    [({"page_size": "null"}, "page_size"), ({"page_size": "0"}, "page_size"), ({"cursor": "öïÞ¡"}, "cursor")],
)
def test_the_audit_trails_pages_refuse_bad_paging_with_a_400(staff_client, query, field):
    """As every list: a page size that is no positive whole number, a cursor nobody wrote (schemathesis)."""
    assert_error(staff_client.get("/api/v1/queue-changes/", query), 400, field=field)
