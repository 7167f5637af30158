"""The queue control API: /api/v1/queues/ (pause, resume, rate limit), /api/v1/rate-limits/ (per
queue or per task) and /api/v1/queue-changes/ (the audit trail). Staff only; changes need
``jobs.change_queuecontrol`` (``jobs.queues.permissions.QueueControlPermission``)."""

from django.conf import settings
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from taskhub.errors import InvalidInput
from taskhub.openapi import ERRORS
from taskhub.pagination import StrictCursorPagination

from ..models import QueueControlAction, QueueControlSource, RateLimitScope
from . import selectors
from .permissions import QueueControlPermission
from .serializers import (
    QueueActionSerializer,
    QueueChangeSerializer,
    QueueResumedSerializer,
    QueueSerializer,
    QueueUpdateSerializer,
    RateLimitSerializer,
    RateLimitWriteSerializer,
)
from .services import queue_check, queue_pause, queue_resume, rate_limit_clear, rate_limit_set, task_check

API = QueueControlSource.API
QUEUE_NAME = OpenApiParameter("name", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(settings.JOB_QUEUES))


@extend_schema_view(
    list=extend_schema(
        summary="Queues: paused or not, rate limit, job counts",
        responses={200: QueueSerializer(many=True), **ERRORS(401, 403)},
    ),
    retrieve=extend_schema(
        summary="A queue", parameters=[QUEUE_NAME], responses={200: QueueSerializer, **ERRORS(401, 403, 404)}
    ),
)
class QueueViewSet(viewsets.ViewSet):
    """The job queues (JOB_QUEUES). A paused queue's jobs stay pending and are not started; running
    jobs are not touched. A rate limit allows at most ``limit`` starts in any ``period`` seconds."""

    permission_classes = (QueueControlPermission,)
    lookup_field = "name"
    lookup_value_regex = "[^/]+"

    def list(self, request):
        return Response(QueueSerializer(selectors.queue_list(), many=True).data)

    def retrieve(self, request, name=None):
        return Response(QueueSerializer(selectors.queue_get(name=name)).data)

    @extend_schema(
        summary="Set (or clear, with null) a queue's rate limit",
        parameters=[QUEUE_NAME],
        request=QueueUpdateSerializer,
        responses={200: QueueSerializer, **ERRORS(400, 401, 403, 404)},
    )
    def partial_update(self, request, name=None):
        selectors.queue_get(name=name)  # 404 first
        serializer = QueueUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if "rate_limit" not in serializer.validated_data:  # nothing to change: the queue as it is
            return Response(QueueSerializer(selectors.queue_get(name=name)).data)
        value, reason = serializer.validated_data["rate_limit"], serializer.validated_data["reason"]
        if value is None:
            rate_limit_clear(scope=RateLimitScope.QUEUE, name=name, by=request.user, source=API, reason=reason)
        else:
            rate_limit_set(scope=RateLimitScope.QUEUE, name=name, by=request.user, source=API, reason=reason, **value)
        return Response(QueueSerializer(selectors.queue_get(name=name)).data)

    @extend_schema(
        summary="Pause a queue: its jobs stay pending; running jobs go on",
        parameters=[QUEUE_NAME],
        request=QueueActionSerializer,
        responses={200: QueueSerializer, **ERRORS(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def pause(self, request, name=None):
        selectors.queue_get(name=name)
        serializer = QueueActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        queue_pause(queue=name, by=request.user, source=API, **serializer.validated_data)
        return Response(QueueSerializer(selectors.queue_get(name=name)).data)

    @extend_schema(
        summary="Resume a queue and send its held jobs at once",
        parameters=[QUEUE_NAME],
        request=QueueActionSerializer,
        responses={200: QueueResumedSerializer, **ERRORS(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["post"])
    def resume(self, request, name=None):
        selectors.queue_get(name=name)
        serializer = QueueActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sent = queue_resume(queue=name, by=request.user, source=API, **serializer.validated_data)
        return Response(QueueResumedSerializer({**selectors.queue_get(name=name), "sent": sent or 0}).data)


@extend_schema_view(
    list=extend_schema(
        summary="Rate limits of queues and tasks", responses={200: RateLimitSerializer(many=True), **ERRORS(401, 403)}
    ),
    retrieve=extend_schema(summary="A rate limit", responses={200: RateLimitSerializer, **ERRORS(401, 403, 404)}),
    destroy=extend_schema(summary="Clear a rate limit", responses={204: None, **ERRORS(401, 403, 404)}),
)
class RateLimitViewSet(viewsets.ViewSet):
    """Rate limits: at most ``limit`` job starts in any ``period`` seconds, across all workers, for a
    queue or for a task. A job under both its queue's and its task's limit needs room in each."""

    permission_classes = (QueueControlPermission,)
    lookup_value_regex = "[0-9]+"

    def list(self, request):
        return Response(RateLimitSerializer(selectors.rate_limit_list(), many=True).data)

    def retrieve(self, request, pk=None):
        return Response(RateLimitSerializer(selectors.rate_limit_get(limit_id=pk)).data)

    @extend_schema(
        summary="Set the rate limit of a queue or a task (201 new, 200 replaced)",
        request=RateLimitWriteSerializer,
        responses={200: RateLimitSerializer, 201: RateLimitSerializer, **ERRORS(400, 401, 403)},
    )
    def create(self, request):
        serializer = RateLimitWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        scope = RateLimitScope.QUEUE if "queue" in data else RateLimitScope.TASK
        name = data.pop("queue", None) or data.pop("task")
        existed = selectors.rate_limit_list().filter(scope=scope, name=name).exists()
        limit = rate_limit_set(scope=scope, name=name, by=request.user, source=API, **data)
        code = status.HTTP_200_OK if existed else status.HTTP_201_CREATED
        return Response(RateLimitSerializer(selectors.rate_limit_get(limit_id=limit.id)).data, status=code)

    def destroy(self, request, pk=None):
        limit = selectors.rate_limit_get(limit_id=pk)
        rate_limit_clear(scope=limit.scope, name=limit.name, by=request.user, source=API)
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueueChangePagination(StrictCursorPagination):
    ordering = ("-at", "-id")


@extend_schema_view(
    list=extend_schema(
        summary="The audit trail of queue control: who paused, resumed or limited what, when, from where",
        parameters=[
            OpenApiParameter(
                "queue", OpenApiTypes.STR, enum=list(settings.JOB_QUEUES), description="Only this queue's changes."
            ),
            OpenApiParameter(
                "task", OpenApiTypes.STR, description="Only this task's (name or alias) rate limit changes."
            ),
            OpenApiParameter("action", OpenApiTypes.STR, enum=QueueControlAction.values, description="Only this kind."),
        ],
        responses={200: QueueChangeSerializer(many=True), **ERRORS(400, 401, 403)},
    ),
)
class QueueChangeViewSet(viewsets.GenericViewSet):
    """Every pause, resume and rate limit set or cleared, newest first (staff only)."""

    permission_classes = (QueueControlPermission,)
    serializer_class = QueueChangeSerializer
    pagination_class = QueueChangePagination
    filter_backends = []

    def get_queryset(self):
        changes = selectors.queue_change_list()
        params = self.request.query_params
        if "queue" in params:
            changes = changes.filter(scope=RateLimitScope.QUEUE, name=queue_check(params["queue"]))
        if "task" in params:
            changes = changes.filter(scope=RateLimitScope.TASK, name=task_check(params["task"]))
        if "action" in params:
            if params["action"] not in QueueControlAction.values:
                allowed = ", ".join(QueueControlAction.values)
                raise InvalidInput(
                    f"action: {params['action']!r} is not an action. Actions: {allowed}.",
                    fields={"action": [f"Not an action. Actions: {allowed}."]},
                )
            changes = changes.filter(action=params["action"])
        return changes

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(QueueChangeSerializer(page, many=True).data)
