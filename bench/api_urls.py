"""URLs for bench_api.py only: the real ones, plus the job list with page-number pagination.

``/bench/paged-jobs/`` is the same viewset as ``/api/v1/jobs/`` (same queryset, filters,
ordering, serializer, authentication and throttling); only its paginator differs: DRF's
PageNumberPagination, which is Django's ``Paginator`` (COUNT(*) + OFFSET). That makes it the
like-for-like baseline for the cursor pages.
"""

from django.urls import include, path
from rest_framework.pagination import PageNumberPagination

from jobs.views import JobCursorPagination, JobViewSet


class JobPageNumberPagination(PageNumberPagination):
    page_size = JobCursorPagination.page_size
    page_size_query_param = JobCursorPagination.page_size_query_param
    max_page_size = JobCursorPagination.max_page_size


class PagedJobViewSet(JobViewSet):
    pagination_class = JobPageNumberPagination
    # The order of the cursor pages (JobCursorPagination: -created_at, then the id as tie-breaker),
    # applied here by OrderingFilter. bench_api.py checks that both views return the same rows.
    ordering = ("-created_at", "-id")


urlpatterns = [
    path("bench/paged-jobs/", PagedJobViewSet.as_view({"get": "list"}), name="bench-paged-jobs"),
    path("", include("taskhub.urls")),
]
