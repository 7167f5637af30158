from rest_framework.routers import SimpleRouter

from . import views


class OptionalSlashRouter(SimpleRouter):
    """Trailing slashes are optional: the spec's examples call /api/v1/tasks/{id}/cancel."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("tasks", views.JobViewSet, basename="task")
router.register("task-catalog", views.TaskCatalogViewSet, basename="task-catalog")

urlpatterns = router.urls
