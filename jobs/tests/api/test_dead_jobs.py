"""Dead jobs: failed jobs out of retries (every automatic retry used: attempts >= max_retries), one
filter away in the API (``?dead=true``; ``?dead=false`` leaves them out)."""

import pytest

from conftest import assert_error
from jobs.tests.factories import make

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed(user):
    return {
        "dead": make("failed", owner=user, attempts=3, max_retries=3),
        "dead_no_retries": make("failed", owner=user, attempts=0, max_retries=0),
        "failed_early": make("failed", owner=user, attempts=0, max_retries=3),  # a non-retryable error
        "retrying": make("pending", owner=user, attempts=1, max_retries=3),
        "succeeded": make("succeeded", owner=user, attempts=3, max_retries=3),
    }


def _ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {job["id"] for job in response.json()["results"]}


@pytest.mark.parametrize("prefix", ["/api/v1/jobs/", "/api/v1/tasks/"])
def test_dead_true_lists_failed_jobs_out_of_retries(user_client, mixed, prefix):
    assert _ids(user_client.get(prefix, {"dead": "true"})) == {str(mixed["dead"].id), str(mixed["dead_no_retries"].id)}


def test_dead_false_leaves_them_out(user_client, mixed):
    expected = {str(mixed[name].id) for name in ("failed_early", "retrying", "succeeded")}
    assert _ids(user_client.get("/api/v1/jobs/", {"dead": "false"})) == expected


def test_dead_combines_with_the_other_filters(user_client, mixed, other_user):
    make("failed", owner=other_user, attempts=3, max_retries=3)  # not theirs: never listed
    response = user_client.get("/api/v1/jobs/", {"dead": "true", "task": "long_running_task"})
    assert _ids(response) == {str(mixed["dead"].id), str(mixed["dead_no_retries"].id)}


@pytest.mark.parametrize("value", ["yes", "2", "dead"])
def test_a_bad_dead_value_is_a_400_naming_it(user_client, value):
    assert_error(user_client.get("/api/v1/jobs/", {"dead": value}), 400, field="dead")
