"""Fixtures of the services' tests."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import Job
from jobs.tests.factories import JobFactory


@pytest.fixture
def analyzed_jobs(user, other_user):
    """A table of mostly finished jobs, analyzed (an empty table's guesses make any index look as good
    as another): ``other_user``'s 300 succeeded and 10 failed a month ago, 3 running and 3 pending;
    ``user``'s 10 succeeded now, 3 running and 3 pending."""
    month_ago = timezone.now() - timedelta(days=30)
    Job.objects.bulk_create(JobFactory.build_batch(300, owner=other_user, succeeded=True, created_at=month_ago))
    Job.objects.bulk_create(JobFactory.build_batch(10, owner=other_user, failed=True, created_at=month_ago))
    Job.objects.bulk_create(JobFactory.build_batch(10, owner=user, succeeded=True))
    for owner in (other_user, user):
        Job.objects.bulk_create(JobFactory.build_batch(3, owner=owner, running=True))
        Job.objects.bulk_create(JobFactory.build_batch(3, owner=owner))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
