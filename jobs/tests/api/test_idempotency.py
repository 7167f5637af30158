"""The Idempotency-Key header: the same key and body give the same job (single and bulk creates),
the key with another body is refused, and keys belong to their user."""

import pytest

from conftest import assert_error
from jobs.models import Job
from jobs.tests.factories import SPEC_BODY, kinds

pytestmark = pytest.mark.django_db


def test_same_idempotency_key_and_body_return_the_same_job(user_client, published, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
        again = user_client.post("/api/v1/tasks/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert (Job.objects.count(), kinds(Job.objects.get())) == (1, ["created"])
    assert [message["id"] for message in published] == [first.json()["id"]]  # sent once


def test_same_idempotency_key_with_another_body_is_refused(user_client, nothing_written):
    first = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == 201
    with nothing_written():
        response = user_client.post(
            "/api/v1/jobs/",
            {**SPEC_BODY, "args": [61]},
            format="json",
            HTTP_IDEMPOTENCY_KEY="order-42",
        )
    assert_error(response, 422, code="idempotency_key_reused")


def test_idempotency_keys_belong_to_their_user(user_client, other_client, user, other_user):
    mine = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = other_client.post(
        "/api/v1/jobs/",
        {**SPEC_BODY, "args": [5]},
        format="json",
        HTTP_IDEMPOTENCY_KEY="k",
    )
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert mine.json()["id"] != theirs.json()["id"]
    assert Job.objects.filter(owner=user).count() == Job.objects.filter(owner=other_user).count() == 1


@pytest.mark.parametrize("key", ["k" * 256, "k" * 300, "has space", "ключ", "tab\tkey", ""])
def test_malformed_idempotency_key_is_refused(user_client, nothing_written, key):
    with nothing_written():
        response = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert_error(response, 400, code="invalid_idempotency_key", field="Idempotency-Key")


def test_longest_idempotency_key_is_accepted(user_client):
    response = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="k" * 255)
    assert response.status_code == 201, response.content


def test_bulk_with_an_idempotency_key_creates_the_jobs_once(user_client, published, django_capture_on_commit_callbacks):
    body = {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [5]}]}
    with django_capture_on_commit_callbacks(execute=True):
        first = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
        again = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="batch-7")
    assert (first.status_code, again.status_code) == (201, 201)
    assert [job["id"] for job in first.json()] == [job["id"] for job in again.json()]
    assert Job.objects.count() == 2 and len(published) == 2  # written and sent once


def test_bulk_with_a_reused_idempotency_key_and_another_list_is_refused(user_client, nothing_written):
    body = {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [5]}]}
    assert user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="b").status_code == 201
    for other in ({"jobs": [SPEC_BODY]}, {"jobs": [SPEC_BODY, {**SPEC_BODY, "args": [6]}]}):
        with nothing_written():
            response = user_client.post("/api/v1/jobs/bulk/", other, format="json", HTTP_IDEMPOTENCY_KEY="b")
        assert_error(response, 422, code="idempotency_key_reused")


def test_bulk_idempotency_keys_do_not_collide_with_single_creates(user_client):
    single = user_client.post("/api/v1/jobs/", SPEC_BODY, format="json", HTTP_IDEMPOTENCY_KEY="same")
    bulk = user_client.post("/api/v1/jobs/bulk/", {"jobs": [SPEC_BODY]}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert (single.status_code, bulk.status_code) == (201, 201)
    assert bulk.json()[0]["id"] != single.json()["id"]


def test_a_bulk_with_duplicates_replays_under_its_idempotency_key(user_client):
    """A keyed item that was a duplicate created no job of its own (so no row carries its share of the
    key): the retry answers the same jobs, the duplicate deduplicated again as a single create's retry."""
    held = user_client.post("/api/v1/jobs/", {**SPEC_BODY, "unique": {"key": "nightly"}}, format="json")
    assert held.status_code == 201
    body = {"jobs": [SPEC_BODY, {**SPEC_BODY, "unique": {"key": "nightly"}}]}
    first = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="mixed-1")
    again = user_client.post("/api/v1/jobs/bulk/", body, format="json", HTTP_IDEMPOTENCY_KEY="mixed-1")
    assert (first.status_code, again.status_code) == (201, 201), again.content
    assert [job["id"] for job in again.json()] == [job["id"] for job in first.json()]
    assert first.json()[1]["id"] == held.json()["id"] and again.json()[1]["dedupe_outcome"] == "existing"
    assert Job.objects.count() == 2
    # Another list under the same key is still refused, also where it differs only in a keyed item.
    other = {"jobs": [SPEC_BODY, {**SPEC_BODY, "unique": {"key": "weekly"}}]}
    response = user_client.post("/api/v1/jobs/bulk/", other, format="json", HTTP_IDEMPOTENCY_KEY="mixed-1")
    assert_error(response, 422, code="idempotency_key_reused")
