from rest_framework.routers import SimpleRouter

from . import views

# Trailing slashes are optional: the spec's examples call /api/v1/tasks/{id}/cancel.
router = SimpleRouter(trailing_slash="/?")
router.register("jobs", views.JobViewSet, basename="job")
router.register("tasks", views.JobViewSet, basename="task")
router.register("task-catalog", views.TaskCatalogViewSet, basename="task-catalog")

urlpatterns = router.urls
