"""Liveness and readiness probes (plain Django views: no auth, no throttling)."""

from django.db import connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from .celery import app as celery_app


@require_GET
def healthz(request) -> JsonResponse:
    """The process is up and answering."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_broker() -> None:
    with celery_app.connection_for_write() as conn:
        # One quick retry, no pause: kombu sleeps 2 s before a retry by default, longer than
        # an orchestrator's probe timeout (1 s on Kubernetes), so the 503 would never arrive.
        # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.html#kombu.Connection.ensure_connection
        conn.ensure_connection(max_retries=1, interval_start=0, timeout=2)
        conn.default_channel  # noqa: B018 - opening a channel proves the broker answers


@require_GET
def readyz(request) -> JsonResponse:
    """200 when the database and the broker answer, else 503 naming what is down."""
    checks = {}
    for name, check in (("database", _check_database), ("broker", _check_broker)):
        try:
            check()
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
            checks[name] = f"down: {exc.__class__.__name__}: {exc}"[:300]
        else:
            checks[name] = "ok"
    down = [name for name, state in checks.items() if state != "ok"]
    if down:
        body = {"code": "not_ready", "message": f"Not ready: {', '.join(down)} down.", "checks": checks}
        return JsonResponse(body, status=503)
    return JsonResponse({"status": "ok", "checks": checks})
