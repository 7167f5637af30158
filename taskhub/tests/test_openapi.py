"""The OpenAPI document and its two viewers."""

import re
import subprocess
import sys

import pytest
from django.conf import settings

pytestmark = pytest.mark.django_db

ACCOUNTS_PATHS = {
    "/api/v1/auth/register/": {"post"},
    "/api/v1/auth/token/": {"post"},
    "/api/v1/auth/token/refresh/": {"post"},
    "/api/v1/auth/token/verify/": {"post"},
    "/api/v1/auth/logout/": {"post"},
    "/api/v1/users/": {"get"},
    "/api/v1/users/{id}/": {"get"},
    "/api/v1/users/me/": {"get", "patch"},
    "/api/v1/users/me/password/": {"post"},
}


def test_schema_lists_every_accounts_path(client):
    response = client.get("/api/schema/", {"format": "json"})

    assert response.status_code == 200, response.content[:500]
    assert response["Content-Type"].startswith("application/vnd.oai.openapi+json")
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "taskhub API"
    for path, methods in ACCOUNTS_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), (
            path,
            schema["paths"][path].keys(),
        )


def test_schema_documents_the_error_shape(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()

    error = schema["components"]["schemas"]["Error"]
    assert set(error["required"]) == {"code", "message"}
    register = schema["paths"]["/api/v1/auth/register/"]["post"]["responses"]
    assert register["400"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_schema_validates_without_warnings(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "spectacular",
            "--validate",
            "--fail-on-warn",
            "--file",
            str(tmp_path / "schema.yaml"),
        ],
        cwd=settings.BASE_DIR,
        env={
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "DEBUG": "true",
            "TASKHUB_VAR_DIR": str(tmp_path / "var"),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "/api/v1/users/me/" in (tmp_path / "schema.yaml").read_text()


@pytest.mark.parametrize("path", ["/api/docs/", "/api/redoc/"])
def test_docs_pages(client, path):
    response = client.get(path)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "/api/schema/" in page
    # The viewer's code comes from this server (drf-spectacular-sidecar), not a CDN.
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    assert scripts
    for script in scripts:
        assert script.startswith("/static/drf_spectacular_sidecar/"), script
        asset = client.get(script)
        asset.close()  # a file response: close it or the file handle leaks
        assert asset.status_code == 200, script
