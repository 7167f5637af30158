"""Queue control in the admin: pause and resume actions, rate limits, the audit trail."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from accounts.tests.factories import UserFactory
from jobs.models import QueueControl, QueueControlChange, RateLimit
from jobs.queues.services import queue_pause

pytestmark = pytest.mark.django_db

QUEUES = "/admin/jobs/queuecontrol/"


@pytest.fixture
def admin_client() -> Client:
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True, username="ops"))
    return client


def test_the_queue_list_shows_every_queue_and_pauses_and_resumes_them(admin_client):
    page = admin_client.get(QUEUES)
    assert page.status_code == 200
    html = page.content.decode()
    assert all(name in html for name in ("high_priority", "default", "low_priority"))
    answer = admin_client.post(
        QUEUES, {"action": "pause_queues", "_selected_action": ["default", "low_priority"]}, follow=True
    )
    assert "Paused 2 queues" in answer.content.decode()
    assert set(QueueControl.objects.filter(paused=True).values_list("name", flat=True)) == {"default", "low_priority"}
    admin_client.post(QUEUES, {"action": "resume_queues", "_selected_action": ["default"]})
    assert not QueueControl.objects.get(name="default").paused
    changes = list(QueueControlChange.objects.order_by("id").values_list("action", "name", "source", "actor_label"))
    assert changes == [
        ("paused", "default", "admin", "user ops"),
        ("paused", "low_priority", "admin", "user ops"),
        ("resumed", "default", "admin", "user ops"),
    ]


def test_a_queues_page_edits_its_rate_limit_and_shows_its_audit_trail(admin_client):
    queue_pause(queue="default", by=None, source="command", reason="maintenance window")
    url = f"{QUEUES}default/change/"
    answer = admin_client.post(url, {"rate_limit": "5", "rate_period": "10", "change_reason": "partner quota"})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert RateLimit.objects.values_list("scope", "name", "limit", "period").get() == ("queue", "default", 5, 10)
    html = admin_client.get(url).content.decode()
    assert "partner quota" in html and "maintenance window" in html and "Rate limit set" in html
    admin_client.post(url, {"rate_limit": "", "rate_period": ""})
    assert not RateLimit.objects.exists()
    assert list(QueueControlChange.objects.order_by("id").values_list("action", "source")) == [
        ("paused", "command"),
        ("limit_set", "admin"),
        ("limit_cleared", "admin"),
    ]


@pytest.mark.parametrize(
    "data,words",
    [
        ({"rate_limit": "-1", "rate_period": "10"}, "greater than or equal to 1"),
        ({"rate_limit": "5", "rate_period": "0"}, "greater than or equal to 1"),
        ({"rate_limit": "5", "rate_period": ""}, "Give both the limit and the period"),
    ],
)
def test_a_bad_rate_limit_is_refused_on_the_page(admin_client, data, words):
    answer = admin_client.post(f"{QUEUES}default/change/", data)
    assert answer.status_code == 200 and words in answer.content.decode()
    assert not RateLimit.objects.exists() and not QueueControlChange.objects.exists()


def test_task_rate_limits_are_checked_against_the_catalog(admin_client):
    url = "/admin/jobs/ratelimit/add/"
    answer = admin_client.post(url, {"scope": "task", "name": "nope", "limit": "2", "period": "60"})
    assert answer.status_code == 200 and "not a registered task" in answer.content.decode()
    answer = admin_client.post(url, {"scope": "task", "name": "long_running_task", "limit": "2", "period": "60"})
    assert answer.status_code == 302
    limit = RateLimit.objects.get()
    assert (limit.name, limit.slots.count()) == ("jobs.tasks.common_tasks.long_running_task", 2)
    admin_client.post(f"/admin/jobs/ratelimit/{limit.pk}/delete/", {"post": "yes"})
    assert not RateLimit.objects.exists()
    assert list(QueueControlChange.objects.order_by("id").values_list("action", "scope", "source")) == [
        ("limit_set", "task", "admin"),
        ("limit_cleared", "task", "admin"),
    ]
    assert admin_client.get("/admin/jobs/queuecontrolchange/").status_code == 200


def test_staff_without_the_permission_see_no_queue_control():
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    assert client.get(QUEUES).status_code == 403
    assert client.get("/admin/jobs/queuecontrolchange/").status_code == 403


def test_a_viewer_with_view_permission_cannot_pause():
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_queuecontrol"))
    client = Client()
    client.force_login(user)
    assert client.get(QUEUES).status_code == 200
    client.post(QUEUES, {"action": "pause_queues", "_selected_action": ["default"]})
    assert not QueueControl.objects.filter(paused=True).exists()
