from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from jobs.admin.dashboard import dashboard_view
from jobs.observability.views import metrics_view

from . import health

handler400 = "taskhub.errors.json_400"
handler403 = "taskhub.errors.page_403"
handler404 = "taskhub.errors.json_404"
handler500 = "taskhub.errors.page_500"

urlpatterns = [
    path("admin/jobs/dashboard/", admin.site.admin_view(dashboard_view), name="jobs-dashboard"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("accounts.urls")),
    path("api/v1/", include("jobs.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
]
