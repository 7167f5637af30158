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
    assert "rate limit set to 5 per 10 s (was none) (reason: partner quota)" in html
    assert "paused (reason: maintenance window)" in html
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


# --- a queue's page: Pause / Resume buttons with a reason, live figures, the audit trail in words ---

PAGE = f"{QUEUES}default/change/"
LIVE = f"{QUEUES}live/"


def operator_of_queues() -> Client:
    """Staff with the operator role's queue permissions (not a superuser)."""
    user = UserFactory(is_staff=True, username="alice")
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=("view_queuecontrol", "change_queuecontrol"), content_type__app_label="jobs"
        )
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def csrf_post(client: Client, url: str, data: dict, **extra):
    """POST as the page's form does: with the CSRF token of the page it was on."""
    client.get(PAGE)
    return client.post(url, {**data, "csrfmiddlewaretoken": client.cookies["csrftoken"].value}, **extra)


def test_a_queues_page_pauses_and_resumes_it_with_a_reason():
    client = operator_of_queues()
    html = client.get(PAGE).content.decode()
    assert f'action="{PAGE.replace("change/", "pause/")}"' in html and 'name="reason"' in html
    answer = csrf_post(client, f"{QUEUES}default/pause/", {"reason": "deploy"}, follow=True)
    assert answer.redirect_chain[-1][0] == PAGE
    control = QueueControl.objects.get(name="default")
    assert (control.paused, control.reason, control.paused_by.username) == (True, "deploy", "alice")
    html = answer.content.decode()
    assert "Paused default" in html
    assert "Paused by alice at" in html and "— reason: deploy" in html
    assert f'action="{PAGE.replace("change/", "resume/")}"' in html
    answer = csrf_post(client, f"{QUEUES}default/resume/", {"reason": "deploy done"}, follow=True)
    assert "Resumed default" in answer.content.decode()
    assert not QueueControl.objects.get(name="default").paused
    assert list(QueueControlChange.objects.order_by("id").values_list("action", "source", "actor_label", "reason")) == [
        ("paused", "admin", "user alice", "deploy"),
        ("resumed", "admin", "user alice", "deploy done"),
    ]


def test_the_buttons_need_a_post_with_the_csrf_token():
    client = operator_of_queues()
    assert client.get(f"{QUEUES}default/pause/").status_code == 405
    assert client.post(f"{QUEUES}default/pause/", {"reason": "x"}).status_code == 403  # no token
    assert not QueueControl.objects.filter(paused=True).exists() and not QueueControlChange.objects.exists()


def test_the_buttons_ask_for_the_same_permission_as_the_api():
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_queuecontrol"))
    client = Client()
    client.force_login(viewer)
    html = client.get(PAGE).content.decode()
    assert 'name="reason"' not in html  # no buttons for who may not use them
    assert client.post(f"{QUEUES}default/pause/", {"reason": "x"}).status_code == 403
    # The change permission without staff status: the API refuses it too (and the admin lets no one in).
    outsider = UserFactory(is_staff=False)
    outsider.user_permissions.add(Permission.objects.get(codename="change_queuecontrol"))
    client.force_login(outsider)
    assert client.post(f"{QUEUES}default/pause/", {"reason": "x"}).status_code == 302  # to the login page
    assert not QueueControl.objects.filter(paused=True).exists() and not QueueControlChange.objects.exists()


@pytest.mark.parametrize(
    "url,data,status,words",
    [
        (f"{QUEUES}default/pause/", {"reason": "x" * 501}, 200, "Reason: Ensure this value has at most 500 characters"),
        (f"{QUEUES}nope/pause/", {"reason": "x"}, 404, ""),
        (f"{QUEUES}nope/resume/", {"reason": "x"}, 404, ""),
    ],
)
def test_bad_input_to_the_buttons_changes_nothing(admin_client, url, data, status, words):
    answer = admin_client.post(url, data, follow=True)
    assert answer.status_code == status
    assert words in answer.content.decode()
    assert not QueueControl.objects.filter(paused=True).exists() and not QueueControlChange.objects.exists()


def test_pausing_a_paused_queue_says_so_and_records_nothing(admin_client):
    queue_pause(queue="default", by=None, source="command", reason="first")
    answer = admin_client.post(f"{QUEUES}default/pause/", {"reason": "second"}, follow=True)
    assert "Queue default was paused already." in answer.content.decode()
    assert QueueControl.objects.get(name="default").reason == "first" and QueueControlChange.objects.count() == 1


def test_the_audit_trail_reads_as_words_on_the_queue_page_and_the_audit_list(admin_client):
    queue_pause(queue="default", by=None, source="command", reason="deploy")
    admin_client.post(PAGE, {"rate_limit": "10", "rate_period": "60", "change_reason": ""})
    for url in (PAGE, "/admin/jobs/queuecontrolchange/"):
        html = admin_client.get(url).content.decode()
        assert "paused (reason: deploy)" in html and "rate limit set to 10/min (was none)" in html, url
        assert "{&#x27;paused&#x27;" not in html and "{'paused'" not in html, url


def test_the_live_view_gives_every_queues_figures_in_words(admin_client):
    from jobs.tests.factories import make

    make(), make("running"), make(priority="low")
    queue_pause(queue="low_priority", by=None, source="command", reason="deploy")
    admin_client.post(PAGE, {"rate_limit": "10", "rate_period": "60", "change_reason": ""})
    body = admin_client.get(LIVE, {"queue": "default"}).json()
    queues = {queue["name"]: queue for queue in body["queues"]}
    assert set(queues) == {"high_priority", "default", "low_priority"}
    default, low = queues["default"], queues["low_priority"]
    assert (default["pending"], default["held"], default["running"], default["paused"]) == (1, 0, 1, False)
    assert default["rate_limit"] == "10/min" and low["rate_limit"] == "none"
    assert default["oldest"].endswith("s") and queues["high_priority"]["oldest"] == "-"
    assert (low["pending"], low["held"], low["paused"]) == (1, 1, True)
    assert "Paused by system at" in low["state"] and "— reason: deploy" in low["state"]
    assert "rate limit set to 10/min (was none)" in body["audit_trail"]


def test_the_live_view_is_for_those_who_may_see_queues():
    client = Client()
    client.force_login(UserFactory(is_staff=True))
    assert client.get(LIVE).status_code == 403
    assert client.get(LIVE, {"queue": "nope"}).status_code == 403


def test_the_live_view_refuses_an_unknown_queue(admin_client):
    answer = admin_client.get(LIVE, {"queue": "nope"})
    assert answer.status_code == 400 and "queue" in answer.json()["fields"]
