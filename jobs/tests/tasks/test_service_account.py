"""Found item 2 (Security II): the django.tasks service account cannot be squatted.

Jobs enqueued outside ``owned_by()`` belong to the one account flagged ``is_service_account``,
never to a person who registered or renamed themselves to its name (``TASKS["default"]["OPTIONS"]["OWNER"]``).
"""

import pytest
from django.conf import settings

from accounts.models import User
from accounts.services import user_service_account
from accounts.tests.factories import UserFactory
from conftest import assert_error
from jobs.models import Job
from jobs.tests import standard_tasks

pytestmark = pytest.mark.django_db

OWNER = settings.TASKS["default"]["OPTIONS"]["OWNER"]


def test_registering_the_service_accounts_name_does_not_own_server_jobs(api_client):
    """The reproduction: register ``django-tasks``, then the server enqueues a standard task."""
    response = api_client.post(
        "/api/v1/auth/register/",
        {"username": OWNER, "email": "squatter@example.org", "password": "plum-orbit-cascade-71"},
    )

    assert_error(response, 400, code="reserved_username", field="username")
    result = standard_tasks.add.enqueue(1, 2)
    job = Job.objects.select_related("owner").get(id=result.id)
    assert job.owner.is_service_account
    assert job.owner.email != "squatter@example.org"


def test_a_person_already_named_like_the_service_account_never_owns_its_jobs(user_client, user):
    """A person who held the name before the upgrade (or got it from an admin) still owns nothing:
    the service account is then made under another name, and found by its flag."""
    User.objects.filter(is_service_account=True).delete()
    squatter = UserFactory(username=OWNER)
    client = type(user_client)()
    client.force_authenticate(user=squatter)

    result = standard_tasks.add.enqueue(1, 2)

    job = Job.objects.select_related("owner").get(id=result.id)
    assert job.owner_id != squatter.pk and job.owner.is_service_account
    assert_error(client.get(f"/api/v1/jobs/{result.id}/"), 404, code="not_found")
    assert client.get("/api/v1/jobs/").json()["results"] == []


def test_the_service_account_is_found_by_its_flag_and_made_once():
    first = user_service_account()
    second = user_service_account()

    assert first.pk == second.pk and first.is_service_account
    assert not first.has_usable_password() and not first.is_staff
    assert first.has_perm("jobs.submit_urgent")  # server code may enqueue priority >= 50 (urgent)
    assert User.objects.filter(is_service_account=True).count() == 1
