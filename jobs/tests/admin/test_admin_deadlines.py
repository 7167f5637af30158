"""Expired jobs in the admin: their badge, the status filter, the job page (its deadline, the
timeline line, Retry offered) and an operator's retry that clears the deadline."""

from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job
from jobs.services.execution import job_start
from jobs.tests.factories import make
from taskhub.testing.admin import CHANGELIST, change_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def expired(owner) -> Job:
    job = make(owner=owner, dispatched_at=timezone.now(), expires_at=timezone.now() - timedelta(seconds=1))
    assert job_start(job_id=job.id, worker="w:1") is None
    return Job.objects.get(id=job.id)


def test_expired_jobs_have_their_badge_and_filter(operator_client, owner, expired):
    other = make("failed", owner=owner)
    html = operator_client.get(CHANGELIST, {"status__exact": "expired"}).content.decode()
    assert "job-badge job-badge--expired" in html and str(expired.pk) in html
    assert str(other.pk) not in html
    assert "expired: not started by its deadline" in html  # the progress message


def test_the_page_of_an_expired_job_shows_its_deadline_and_offers_retry(operator_client, expired):
    html = operator_client.get(change_url(expired)).content.decode()
    assert "job-badge--expired" in html and "expires at (never started after)" in html.lower()
    assert "expired: not started by " in html and "pending → expired" in html
    assert '<li data-job-operation="retry">' in html
