"""Cancel, retry and delete every job matching the list's filters: a confirmation page with the
count first, then the services applied in batches, with what succeeded and what was refused."""

from datetime import timedelta
from urllib.parse import urlencode

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone
from django.utils.html import escape

from accounts.tests.factories import UserFactory
from jobs.admin import matching, pagination
from jobs.models import Job, JobEventKind, JobStatus
from taskhub.testing.admin import CHANGELIST, client_for, make_job, member_of, messages_of

MATCHING = "/admin/jobs/job/matching/"


@pytest.fixture
def small_batches(monkeypatch):
    monkeypatch.setattr(matching, "BATCH_SIZE", 2)


def statuses() -> dict[str, str]:
    return dict(Job.objects.values_list("name", "status"))


def test_the_list_offers_the_operations_on_all_matching_jobs(operator_client, owner):
    for index in range(3):
        make_job(owner, JobStatus.FAILED, name=f"broken {index}")
    make_job(owner, JobStatus.SUCCEEDED, name="done")

    html = operator_client.get(CHANGELIST, {"status__exact": "failed"}).content.decode()

    assert f'href="{MATCHING}cancel/' not in html  # none of them is pending or running (Experience e)
    assert f'href="{MATCHING}retry/?status__exact=failed"' in html
    assert f'href="{MATCHING}delete/?status__exact=failed"' in html
    assert "Retry all 3 matching…" in html


def test_each_all_matching_operation_is_offered_only_when_some_jobs_qualify_with_the_counts(operator_client, owner):
    """Experience e: no "Retry all N matching…" when none of them failed; the counts said."""
    for index in range(3):
        make_job(owner, JobStatus.FAILED, name=f"broken {index}")
    make_job(owner, JobStatus.RUNNING, name="busy")

    html = operator_client.get(CHANGELIST).content.decode()
    assert "Retry 3 of the 4 matching…" in html
    assert "Cancel 1 of the 4 matching…" in html
    assert "Delete 3 of the 4 matching…" in html

    html = operator_client.get(CHANGELIST, {"status__exact": "running"}).content.decode()
    assert f'href="{MATCHING}retry/' not in html
    assert f'href="{MATCHING}delete/' not in html
    assert "Cancel all 1 matching…" in html


def test_the_confirmation_shows_the_count_and_the_filters_first(operator_client, owner):
    make_job(owner, JobStatus.PENDING, name="waiting")
    make_job(owner, JobStatus.RUNNING, name="busy")
    make_job(owner, JobStatus.SUCCEEDED, name="done")
    make_job(owner, JobStatus.PENDING, name="other", priority="low", queue="low_priority")

    response = operator_client.get(f"{MATCHING}cancel/", {"priority__exact": "normal"})

    assert response.status_code == 200
    html = response.content.decode()
    assert "3 jobs match" in html
    assert "2 of them can be cancelled" in html
    assert "priority: Normal" in html
    assert f'action="{MATCHING}cancel/?priority__exact=normal"' in html
    assert statuses() == {"waiting": "pending", "busy": "running", "done": "succeeded", "other": "pending"}


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"kwarg": ["user_id:42", "plan:pro"]}, "arguments: kwarg=user_id:42, kwarg=plan:pro"),
        ({"kwargs_contains": '{"user_id": 42}'}, 'arguments: kwargs_contains={"user_id": 42}'),
    ],
)
def test_all_matching_after_an_argument_search_names_it_and_cancels_only_those(operator_client, owner, params, words):
    """Once a 500 (KeyError: 'selected'): the argument filter's choices are a search box, not options."""
    make_job(owner, JobStatus.PENDING, name="match", kwargs={"user_id": 42, "plan": "pro"})
    make_job(owner, JobStatus.PENDING, name="other", kwargs={"user_id": 43, "plan": "pro"})
    query = urlencode(params, doseq=True)

    response = operator_client.get(f"{MATCHING}cancel/?{query}")

    assert response.status_code == 200
    html = response.content.decode()
    assert "1 job matches" in html
    assert escape(words) in html
    operator_client.post(f"{MATCHING}cancel/?{query}", {"post": "yes"})
    assert statuses() == {"match": "revoked", "other": "pending"}


def test_cancel_all_matching(operator, operator_client, owner, small_batches):
    for index in range(3):
        make_job(owner, JobStatus.PENDING, name=f"waiting {index}")
    make_job(owner, JobStatus.RUNNING, name="busy")
    make_job(owner, JobStatus.RUNNING, name="stopping", cancel_requested_at=timezone.now())
    make_job(owner, JobStatus.SUCCEEDED, name="done")
    make_job(UserFactory(username="bob"), JobStatus.PENDING, name="someone else's")
    stopping = Job.objects.get(name="stopping")

    response = operator_client.post(f"{MATCHING}cancel/?q=alice", {"post": "yes"}, follow=True)

    assert response.redirect_chain[-1][0] == f"{CHANGELIST}?q=alice"
    shown = messages_of(response)
    assert "3 jobs cancelled." in shown
    assert any(text.startswith("Cancel requested for 1 running job") for text in shown)
    assert f"1 job could not be cancelled: Job {stopping.pk} is already being cancelled" in " ".join(shown)
    assert "1 matching job was left alone: 1 succeeded." in shown
    assert statuses() == {
        "waiting 0": "revoked",
        "waiting 1": "revoked",
        "waiting 2": "revoked",
        "busy": "running",
        "stopping": "running",
        "done": "succeeded",
        "someone else's": "pending",
    }
    assert Job.objects.get(name="busy").cancel_requested_at is not None
    assert Job.objects.get(name="waiting 0").events.get(kind=JobEventKind.REVOKED).actor == operator


def test_retry_all_matching(operator_client, owner, small_batches, django_capture_on_commit_callbacks):
    make_job(owner, JobStatus.FAILED, name="broken")
    make_job(owner, JobStatus.REVOKED, name="stopped")
    make_job(owner, JobStatus.SUCCEEDED, name="done")
    make_job(owner, JobStatus.FAILED, name="old", created_at=timezone.now() - timedelta(days=40))
    since = urlencode({"created_at__gte": str(timezone.localtime() - timedelta(days=7))})

    with django_capture_on_commit_callbacks(execute=True):
        response = operator_client.post(f"{MATCHING}retry/?{since}", {"post": "yes"}, follow=True)

    shown = messages_of(response)
    assert "2 jobs queued again." in shown
    assert "1 matching job was left alone: 1 succeeded." in shown
    assert statuses() == {"broken": "pending", "stopped": "pending", "done": "succeeded", "old": "failed"}


def test_delete_all_matching(operator, operator_client, owner, small_batches):
    for index in range(3):
        make_job(owner, JobStatus.SUCCEEDED, name=f"done {index}")
    make_job(owner, JobStatus.RUNNING, name="busy")
    make_job(owner, JobStatus.FAILED, name="broken")

    response = operator_client.post(f"{MATCHING}delete/?status__exact=succeeded", {"post": "yes"}, follow=True)

    assert "3 jobs deleted." in messages_of(response)
    assert statuses() == {"busy": "running", "broken": "failed"}
    assert LogEntry.objects.filter(action_flag=DELETION, user=operator).count() == 3


def test_delete_all_matching_leaves_active_jobs_alone(operator_client, owner):
    make_job(owner, JobStatus.SUCCEEDED, name="done")
    make_job(owner, JobStatus.RUNNING, name="busy")
    make_job(owner, JobStatus.PENDING, name="waiting")

    confirm = operator_client.get(f"{MATCHING}delete/").content.decode()
    assert "3 jobs match" in confirm and "1 of them can be deleted" in confirm

    response = operator_client.post(f"{MATCHING}delete/", {"post": "yes"}, follow=True)

    assert "1 job deleted." in messages_of(response)
    assert "2 matching jobs were left alone: 1 pending, 1 running." in messages_of(response)
    assert statuses() == {"busy": "running", "waiting": "pending"}


def test_selecting_all_matching_in_the_list_leads_to_the_confirmation(operator_client, owner):
    job = make_job(owner, JobStatus.PENDING, name="waiting")

    response = operator_client.post(
        f"{CHANGELIST}?status__exact=pending",
        {"action": "cancel", "select_across": "1", "index": "0", "_selected_action": [str(job.pk)]},
    )

    assert response.status_code == 302
    assert response["Location"] == f"{MATCHING}cancel/?status__exact=pending"
    assert statuses() == {"waiting": "pending"}


def test_nothing_to_do(operator_client, owner):
    make_job(owner, JobStatus.SUCCEEDED, name="done")

    html = operator_client.get(f"{MATCHING}retry/").content.decode()
    assert "None of them can be retried" in html

    response = operator_client.post(f"{MATCHING}retry/", {"post": "yes"}, follow=True)
    assert "1 matching job was left alone: 1 succeeded." in messages_of(response)


def test_counts_are_bounded_on_large_tables(operator_client, owner, monkeypatch):
    for index in range(4):
        make_job(owner, JobStatus.FAILED, name=f"broken {index}")
    monkeypatch.setattr(matching, "COUNT_UP_TO", 2)

    html = operator_client.get(f"{MATCHING}retry/", {"status__exact": "failed"}).content.decode()
    assert "4 jobs match" in html and "More than 2 of them can be retried" in html

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE jobs_job")
        make_job(owner, JobStatus.FAILED, name="not in the statistics yet")
        monkeypatch.setattr(pagination, "ESTIMATE_COUNT_ABOVE", 0)
        html = operator_client.get(f"{MATCHING}retry/").content.decode()
        assert "About 4 jobs match" in html


@pytest.mark.parametrize(
    ("url", "status"),
    [
        (f"{MATCHING}reboot/", 404),
        (f"{MATCHING}cancel/?nonsense=1", 302),
    ],
)
def test_bad_requests_change_nothing(operator_client, owner, url, status):
    make_job(owner, JobStatus.PENDING, name="waiting")

    response = operator_client.post(url, {"post": "yes"})

    assert response.status_code == status
    if status == 302:
        assert response["Location"] == CHANGELIST
        shown = messages_of(operator_client.get(CHANGELIST))
        assert any("nonsense" in text for text in shown), shown
    assert statuses() == {"waiting": "pending"}


def test_operations_need_their_permission(roles, owner):
    make_job(owner, JobStatus.SUCCEEDED, name="done")
    make_job(owner, JobStatus.PENDING, name="waiting")
    viewer = client_for(member_of("viewer"))
    # May cancel and retry ("change"), not delete.
    changer = UserFactory(is_staff=True)
    changer.user_permissions.add(*Permission.objects.filter(codename__in=["view_job", "change_job"]))
    changer = client_for(changer)

    for operation in ("cancel", "retry", "delete"):
        assert viewer.get(f"{MATCHING}{operation}/").status_code == 403
        assert viewer.post(f"{MATCHING}{operation}/", {"post": "yes"}).status_code == 403
    assert changer.get(f"{MATCHING}delete/").status_code == 403
    assert changer.post(f"{MATCHING}delete/", {"post": "yes"}).status_code == 403
    assert changer.get(f"{MATCHING}cancel/").status_code == 200
    html = changer.get(CHANGELIST).content.decode()
    assert f"{MATCHING}cancel/" in html and f"{MATCHING}delete/" not in html
    assert statuses() == {"done": "succeeded", "waiting": "pending"}
