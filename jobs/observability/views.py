"""``GET /metrics`` (Prometheus) and ``GET /api/v1/stats/`` (JSON): what operators watch."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from taskhub.errors import error_body
from taskhub.openapi import ERRORS

from ..services.metrics import metrics_advance
from .collector import JobCollector
from .serializers import StatsQuerySerializer, StatsSerializer
from .stats import job_stats

# One registry of taskhub's own collector (not prometheus_client's global one, whose process
# metrics would describe whichever web process happened to answer).
REGISTRY = CollectorRegistry(auto_describe=False)
REGISTRY.register(JobCollector())


def _refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the request may read the metrics: ``Authorization: Bearer <METRICS_TOKEN>``, or
    the session of an active staff member. Else the 401 or 403 in the one error shape."""
    token = settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and token and hmac.compare_digest(value.strip().encode(), token.encode()):
            return None
        message = "Authorization: not the metrics token (METRICS_TOKEN)." if token else "No METRICS_TOKEN is set."
        response = JsonResponse(error_body("authentication_failed", message), status=401)
    elif request.user.is_authenticated and request.user.is_active and request.user.is_staff:
        return None
    elif request.user.is_authenticated:
        message = "The metrics are for staff members (or a client with the METRICS_TOKEN)."
        return JsonResponse(error_body("permission_denied", message), status=403)
    else:
        message = "Send Authorization: Bearer <METRICS_TOKEN>, or log in as a staff member."
        response = JsonResponse(error_body("not_authenticated", message), status=401)
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@never_cache
def metrics_view(request: HttpRequest) -> HttpResponse:
    """The Prometheus text exposition of taskhub's jobs, queues and workers (``jobs.observability.collector``)."""
    if request.method not in ("GET", "HEAD"):
        body = error_body("method_not_allowed", f'Method "{request.method}" not allowed.')
        return JsonResponse(body, status=405, headers={"Allow": "GET, HEAD"})
    if refusal := _refusal(request):
        return refusal
    metrics_advance()  # count what finished since the last pass (one batch; beat's task catches up)
    # The format the scraper asks for (Accept: OpenMetrics or text 1.0.0); else the classic text 0.0.4.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(REGISTRY), content_type=content_type)


class StatsView(APIView):
    """Counts, throughput, failure rate, finished jobs per minute, slowest tasks and workers, over
    the jobs you may see (yours; staff with jobs.view_job: everyone's).

    Finished jobs are read from a per-minute rollup (windows are whole minutes by the database's
    clock), which each request first brings up to date; pending and running counts and the oldest
    due pending job are exact, read live. Run-time percentiles are estimated from histogram buckets
    (linear interpolation inside the bucket, as Prometheus' histogram_quantile)."""

    permission_classes = (IsAuthenticated,)

    @extend_schema(
        summary="Job statistics: counts, throughput, failure rate, slowest tasks, workers",
        parameters=[StatsQuerySerializer],
        responses={200: StatsSerializer, **ERRORS(400, 401)},
    )
    def get(self, request):
        query = StatsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        stats = job_stats(user=request.user, **query.validated_data)
        return Response(StatsSerializer(stats).data)
