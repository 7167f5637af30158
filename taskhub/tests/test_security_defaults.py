"""Deployment defaults with DEBUG off (as the suite runs): cookies are Secure on HTTPS and HSTS is
sent there, while plain HTTP (``make run`` on http://127.0.0.1) keeps working; a
Content-Security-Policy allows this server's own code only on the admin and the docs; and the web
process runs the system checks when it starts, refusing to start on an error (accounts.E001)."""

import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from taskhub.testing import child_database_url, free_port, wait_for

pytestmark = pytest.mark.django_db

LOGIN = "/admin/login/"


def log_in(client: Client, user, password: str, *, secure: bool):
    client.get(LOGIN, secure=secure)
    token = client.cookies["csrftoken"].value
    return client.post(
        LOGIN,
        {"username": user.username, "password": password, "csrfmiddlewaretoken": token, "next": "/admin/"},
        secure=secure,
        headers={"Referer": f"{'https' if secure else 'http'}://testserver{LOGIN}"},
    )


def test_over_https_the_cookies_are_secure_and_hsts_is_sent(staff_user, password):
    assert not settings.DEBUG
    client = Client()
    response = log_in(client, staff_user, password, secure=True)
    assert response.status_code == 302, response.content[:500]
    assert client.cookies["sessionid"]["secure"] is True
    assert client.cookies["csrftoken"]["secure"] is True
    assert response["Strict-Transport-Security"] == "max-age=31536000"  # a year; subdomains and preload opt-in


def test_over_plain_http_logging_in_still_works(staff_user, password):
    """``make run`` serves http://127.0.0.1 with DEBUG off: a Secure cookie would never come back."""
    client = Client()
    response = log_in(client, staff_user, password, secure=False)
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert not client.cookies["sessionid"]["secure"] and not client.cookies["csrftoken"]["secure"]
    assert "Strict-Transport-Security" not in response
    assert client.get("/admin/").status_code == 200


def directives(response) -> dict[str, str]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in header.split(";") if part.strip()}


@pytest.mark.parametrize("path", [LOGIN, "/api/docs/", "/api/redoc/"])
def test_the_admin_and_the_docs_have_a_content_security_policy_of_this_server_only(client, path):
    response = client.get(path)
    assert response.status_code == 200
    policy = directives(response)
    assert policy["default-src"] == "default-src 'self'"
    assert policy["script-src"] == "script-src 'self'"  # no inline script, nothing from elsewhere
    assert policy["object-src"] == "object-src 'none'" and policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert "http" not in response["Content-Security-Policy"]
    page = response.content.decode()
    assert not re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", page), "an inline script the policy would block"
    assert "googleapis" not in page and "https://" not in re.sub(
        r'href="https://[^"]*(djangoproject|redocly)', "", page
    )


def test_the_swagger_ui_setup_script_is_served_by_this_server(client):
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', page)
    setup = [src for src in scripts if not src.startswith("/static/")]
    assert setup, scripts
    response = client.get(setup[0].replace("&amp;", "&"))
    assert response.status_code == 200 and "SwaggerUIBundle" in response.content.decode()


def web_process(tmp_path, **env: str) -> tuple[subprocess.Popen, int, Path]:
    """The Procfile's web line, run as honcho and `make run` run it (``sh -c``, the virtualenv first on PATH)."""
    line = next(line for line in (settings.BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:"))
    port, log = free_port(), tmp_path / "web.log"
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    environment = {**os.environ, "PATH": path, "TASKHUB_PORT": str(port), "DATABASE_URL": child_database_url(), **env}
    with log.open("wb") as handle:
        process = subprocess.Popen(
            ["/bin/sh", "-c", line.removeprefix("web:").strip()],
            cwd=settings.BASE_DIR,
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return process, port, log


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.mark.worker  # real web processes, started as the Procfile starts them
def test_the_web_process_runs_the_system_checks_and_refuses_to_start_on_an_error(tmp_path):
    per_process = {"CACHE_URL": "locmemcache://taskhub"}
    refused, port, log = web_process(tmp_path, WEB_CONCURRENCY="2", **per_process)
    try:
        assert refused.wait(timeout=60) != 0
    finally:
        if refused.poll() is None:
            os.killpg(refused.pid, signal.SIGTERM)
            refused.wait(timeout=10)
    assert "accounts.E001" in log.read_text() and not healthy(port)
    # One web process may keep its own counters: it starts and answers.
    started, port, log = web_process(tmp_path, WEB_CONCURRENCY="1", **per_process)
    try:
        wait_for(lambda: healthy(port) or started.poll() is not None, timeout=60, message="the web process")
        assert healthy(port), log.read_text()[-3000:]
    finally:
        os.killpg(started.pid, signal.SIGTERM)
        started.wait(timeout=10)
