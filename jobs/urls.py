from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from . import views
from .observability.views import StatsView
from .queues.views import QueueChangeViewSet, QueueViewSet, RateLimitViewSet
from .schedules.views import ScheduleViewSet
from .streams.views import job_list_stream, job_stream, workflow_stream
from .workflows.views import WorkflowViewSet


class OptionalSlashRouter(SimpleRouter):
    """Trailing slashes are optional: the spec's examples call /api/v1/tasks/{id}/cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("tasks", views.JobViewSet, basename="task")
router.register("task-catalog", views.TaskCatalogViewSet, basename="task-catalog")
router.register("schedules", ScheduleViewSet, basename="schedule")
router.register("queues", QueueViewSet, basename="queue")
router.register("rate-limits", RateLimitViewSet, basename="rate-limit")
router.register("queue-changes", QueueChangeViewSet, basename="queue-change")
router.register("workflows", WorkflowViewSet, basename="workflow")

# Live progress streams (server-sent events), before the router so that jobs/stream/ is not a job id.
stream_urls = [
    url
    for prefix, basename in (("jobs", "job"), ("tasks", "task"))
    for url in (
        re_path(rf"^{prefix}/stream/?$", job_list_stream, name=f"{basename}-list-stream"),
        re_path(
            rf"^{prefix}/(?P<pk>{views.JobViewSet.lookup_value_regex})/stream/?$",
            job_stream,
            name=f"{basename}-stream",
        ),
    )
]

stream_urls.append(
    re_path(
        rf"^workflows/(?P<pk>{WorkflowViewSet.lookup_value_regex})/stream/?$", workflow_stream, name="workflow-stream"
    )
)

urlpatterns = [*stream_urls, path("stats/", StatsView.as_view(), name="stats"), *router.urls]
