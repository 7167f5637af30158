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
    "/api/v1/users/me/email/verify/": {"post"},
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


def test_schema_documents_verified_email_and_the_rename_password(client):
    """Security II: the verify endpoint, the pending address, current_password, and registration's 202."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]

    assert {"email_verified", "email_verified_at", "pending_email"} <= set(components["User"]["properties"])
    patch = schema["paths"]["/api/v1/users/me/"]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert "current_password" in components[patch["$ref"].rsplit("/", 1)[-1]]["properties"]
    verify = schema["paths"]["/api/v1/users/me/email/verify/"]["post"]
    assert (
        "token"
        in components[verify["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/")[-1]][
            "properties"
        ]
    )
    assert {"200", "400", "401"} <= set(verify["responses"])
    assert "202" in schema["paths"]["/api/v1/auth/register/"]["post"]["responses"]


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
    # The viewer's code comes from this server (drf-spectacular-sidecar), not a CDN; Swagger UI's
    # setup script too (/api/docs/?script=, which names the schema), as the CSP allows no inline script.
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    assert scripts
    for script in scripts:
        assert script.startswith(("/static/drf_spectacular_sidecar/", f"{path}?script")), script
        asset = client.get(script)
        text = b"".join(asset.streaming_content) if asset.streaming else asset.content
        asset.close()  # a file response: close it or the file handle leaks
        assert asset.status_code == 200, script
        page += text.decode() if script.startswith(path) else ""
    assert "/api/schema/" in page


# --- the document describes what the API really returns (issue 9, schemathesis) -----------------


@pytest.fixture
def schema(client) -> dict:
    return client.get("/api/schema/", {"format": "json"}).json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def test_fields_that_can_be_null_are_nullable(schema):
    """A job nobody cancelled (or cancelled by the system) and a timeline event of the system have
    no user: the API answers null there."""
    components = schema["components"]["schemas"]
    assert components["Job"]["properties"]["cancelled_by"].get("nullable") is True
    assert components["JobEvent"]["properties"]["actor"].get("nullable") is True


def test_the_bulk_body_is_a_non_empty_bounded_list_of_job_requests(schema):
    body = schema["paths"]["/api/v1/jobs/bulk/"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    jobs = schema["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]["properties"]["jobs"]
    assert jobs["minItems"] == 1
    assert jobs["maxItems"] == settings.JOB_BULK_MAX
    assert jobs["items"] == {"$ref": "#/components/schemas/JobCreateRequest"}


@pytest.mark.parametrize("path", ["/api/v1/jobs/", "/api/v1/jobs/bulk/", "/api/v1/tasks/", "/api/v1/tasks/bulk/"])
def test_the_idempotency_key_format_is_in_the_schema(schema, path):
    (header,) = [p for p in schema["paths"][path]["post"]["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["in"] == "header"
    assert header["schema"] == {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"}


def test_every_operation_documents_the_errors_any_request_can_get(schema):
    """Whatever the operation: a NUL in a query parameter is a 400 and the default throttles a 429;
    with a path parameter, a 404; with a body, a 413 (too large) and a 415 (not JSON). Each in the
    one error shape."""
    error = {"$ref": "#/components/schemas/Error"}
    for path, method, operation in operations(schema):
        if path.endswith("/stream/"):
            continue  # plain async views: no throttle, no body (documented by jobs.streams.openapi)
        expected = {"400", "429"}
        if "{" in path:
            expected.add("404")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        responses = operation["responses"]
        assert expected <= set(responses), (method, path, sorted(responses))
        for code in expected:
            assert responses[code]["content"]["application/json"]["schema"] == error, (method, path, code)


def test_authenticated_operations_document_401(schema):
    for path, method, operation in operations(schema):
        if path != "/api/v1/auth/register/" and path != "/api/v1/auth/logout/":
            assert "401" in operation["responses"], (method, path)


def test_page_size_is_documented_as_a_positive_integer(schema):
    for path in ("/api/v1/jobs/", "/api/v1/schedules/", "/api/v1/users/"):
        (page_size,) = [p for p in schema["paths"][path]["get"]["parameters"] if p["name"] == "page_size"]
        assert page_size["schema"] == {"type": "integer", "minimum": 1}, path
        assert "200" in page_size["description"], path


def test_a_schedule_id_is_an_integer(schema):
    for path, method, operation in operations(schema):
        if path.startswith("/api/v1/schedules/{id}/"):
            (parameter,) = [p for p in operation["parameters"] if p["name"] == "id"]
            assert parameter["schema"] == {"type": "integer"}, (method, path)


def test_the_spec_aliases_are_deprecated_and_tagged_apart(schema):
    """Experience (a): /api/v1/tasks/... (the original spec's paths, still served) are the same
    operations as /api/v1/jobs/...; Swagger shows them apart, deprecated, under their own tag."""
    aliases = [(p, m, o) for p, m, o in operations(schema) if p.startswith("/api/v1/tasks/")]
    jobs = [(p, m, o) for p, m, o in operations(schema) if p.startswith("/api/v1/jobs/")]
    assert aliases and len(aliases) == len(jobs)
    for path, method, operation in aliases:
        assert operation.get("deprecated") is True, (method, path)
        assert operation["tags"] == ["tasks (spec aliases)"], (method, path)
        assert schema["paths"][path.replace("/api/v1/tasks/", "/api/v1/jobs/", 1)][method]
    for path, method, operation in jobs:
        assert not operation.get("deprecated"), (method, path)
        assert "tasks (spec aliases)" not in operation["tags"], (method, path)
    assert "tasks (spec aliases)" in {tag["name"] for tag in schema.get("tags", [])}
