"""The API docs in headless Chromium under the Content-Security-Policy (this server's code only, no
inline script): Swagger UI and ReDoc render the document and no request leaves this server. ReDoc's
bundle hard-codes one image from its CDN (the "redocly logo"): the policy stops it in the browser,
before anything is sent. With the admin's browser tests, for their fixtures."""

import pytest

from taskhub.testing.browser import open_page

pytestmark = pytest.mark.browser

REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        ("/api/docs/", "#swagger-ui .opblock-tag"),  # the operations, grouped by tag
        ("/api/redoc/", "redoc [role=search] input, redoc h1"),
    ],
)
def test_the_docs_render_under_the_policy_from_this_server_only(asgi_live_server, browser, path, rendered):
    page, errors = open_page(browser)
    refused, elsewhere = [], []
    page.on("console", lambda message: "Content Security Policy" in message.text and refused.append(message.text))
    page.on(
        "request",
        lambda request: (
            not request.url.startswith(("data:", "blob:", asgi_live_server.url)) and elsewhere.append(request.url)
        ),
    )
    page.goto(f"{asgi_live_server.url}{path}")
    page.wait_for_selector(rendered, timeout=30_000)
    blocked = [error for error in errors.errors if error == f"failed GET {REDOC_LOGO}: csp"]
    assert [error for error in errors.errors if error not in blocked] == []
    assert all(REDOC_LOGO in message for message in refused), refused
    assert elsewhere == [REDOC_LOGO] * len(blocked)  # asked for, and refused by the policy in the browser
    page.close()
