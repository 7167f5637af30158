"""The admin's surroundings (issue "Experience" c, d): its "View site" link leads to a real page;
its 403 and 500 pages are HTML pages in the admin's style, while /api/... keeps the JSON error shape."""

import pytest
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.test import Client, override_settings
from django.urls import include, path

from jobs.models import JobStatus
from taskhub import urls as taskhub_urls
from taskhub.testing.admin import change_url, client_for, make_job, member_of

pytestmark = pytest.mark.django_db


def test_the_view_site_link_leads_to_the_api_docs(operator_client):
    index = operator_client.get("/admin/").content.decode()
    assert 'href="/api/docs/"' in index
    docs = operator_client.get("/api/docs/")
    assert docs.status_code == 200
    assert docs["Content-Type"].startswith("text/html")


def test_a_viewer_on_an_operator_only_url_gets_the_admins_403_page(roles, owner):
    job = make_job(owner, status=JobStatus.RUNNING)
    response = client_for(member_of("viewer")).post(change_url(job).replace("/change/", "/cancel/"))

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "taskhub administration" in page  # the admin's header: its base_site
    assert "admin/css/base.css" in page
    assert "not allowed" in page.lower()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING


def test_a_403_on_the_api_keeps_the_json_shape(roles):
    response = client_for(member_of("viewer")).post("/api/v1/queues/default/pause/")
    assert response.status_code == 403
    assert set(response.json()) == {"code", "message"}


def _boom(request):
    raise RuntimeError("a bug")


def _forbidden(request):
    raise PermissionDenied


urlpatterns = [
    path("admin/boom/", admin.site.admin_view(_boom)),
    path("api/v1/boom/", _boom),
    path("api/v1/forbidden/", _forbidden),
    path("", include("taskhub.urls")),
]
handler400, handler403, handler404, handler500 = (
    taskhub_urls.handler400,
    taskhub_urls.handler403,
    taskhub_urls.handler404,
    taskhub_urls.handler500,
)


@override_settings(ROOT_URLCONF=__name__)
def test_a_500_on_an_admin_page_is_an_html_page(operator):
    client = Client(raise_request_exception=False)
    client.force_login(operator)
    response = client.get("/admin/boom/")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "admin/css/base.css" in page
    assert "taskhub administration" in page
    assert "a bug" not in page  # the error is logged, not shown


@override_settings(ROOT_URLCONF=__name__)
@pytest.mark.parametrize(
    ("url", "status", "code"),
    [("/api/v1/boom/", 500, "server_error"), ("/api/v1/forbidden/", 403, "permission_denied")],
)
def test_a_500_or_403_outside_drf_on_an_api_path_is_json(url, status, code):
    response = Client(raise_request_exception=False).get(url)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code
