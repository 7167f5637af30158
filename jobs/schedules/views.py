"""The schedules API (/api/v1/schedules/): periodic jobs, owner-scoped like jobs."""

from django_celery_beat.models import PeriodicTask
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from taskhub.openapi import ERRORS
from taskhub.pagination import StrictCursorPagination

from ..serializers import JobSerializer
from . import selectors
from .firing import job_schedule_run_now
from .serializers import ScheduleSerializer, ScheduleWriteSerializer
from .services import job_schedule_create, job_schedule_delete, job_schedule_set_enabled, job_schedule_update

# The router's lookup pattern ([0-9]+) would be documented as a string with that pattern.
SCHEDULE_ID = OpenApiParameter("id", OpenApiTypes.INT, OpenApiParameter.PATH, description="The schedule's id.")


class ScheduleCursorPagination(StrictCursorPagination):
    ordering = "-id"


@extend_schema_view(
    list=extend_schema(summary="List schedules", responses={200: ScheduleSerializer(many=True), **ERRORS(400, 401)}),
    retrieve=extend_schema(
        summary="A schedule", parameters=[SCHEDULE_ID], responses={200: ScheduleSerializer, **ERRORS(401, 404)}
    ),
    destroy=extend_schema(
        summary="Delete a schedule (its jobs stay, unlinked)",
        parameters=[SCHEDULE_ID],
        responses={204: None, **ERRORS(401, 404)},
    ),
)
class ScheduleViewSet(viewsets.GenericViewSet):
    """Schedules: a catalog task with arguments, a priority and an interval or crontab. Each
    firing creates a job linked to its schedule. Yours, or everyone's for staff; another user's
    schedule answers 404."""

    serializer_class = ScheduleSerializer
    pagination_class = ScheduleCursorPagination
    filter_backends = []
    lookup_value_regex = "[0-9]+"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return PeriodicTask.objects.none()
        return selectors.job_schedule_list(user=self.request.user)

    def get_object(self):
        return selectors.job_schedule_get(user=self.request.user, schedule_id=self.kwargs["pk"])

    def _answer(self, periodic_task_id: int, code: int = status.HTTP_200_OK) -> Response:
        schedule = selectors.job_schedule_get(user=self.request.user, schedule_id=periodic_task_id)
        return Response(ScheduleSerializer(schedule).data, status=code)

    def list(self, request):
        page = self.paginate_queryset(self.get_queryset())
        return self.get_paginated_response(ScheduleSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(ScheduleSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create a schedule",
        request=ScheduleWriteSerializer,
        responses={201: ScheduleSerializer, **ERRORS(400, 401, 403, 429)},
    )
    def create(self, request):
        serializer = ScheduleWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        periodic_task = job_schedule_create(owner=request.user, **serializer.validated_data)
        return self._answer(periodic_task.pk, status.HTTP_201_CREATED)

    @extend_schema(
        summary="Replace a schedule",
        parameters=[SCHEDULE_ID],
        request=ScheduleWriteSerializer,
        responses={200: ScheduleSerializer, **ERRORS(400, 401, 403, 404)},
    )
    def update(self, request, pk=None):
        return self._change(request, partial=False)

    @extend_schema(
        summary="Change a schedule",
        parameters=[SCHEDULE_ID],
        request=ScheduleWriteSerializer,
        responses={200: ScheduleSerializer, **ERRORS(400, 401, 403, 404)},
    )
    def partial_update(self, request, pk=None):
        return self._change(request, partial=True)

    def _change(self, request, *, partial: bool) -> Response:
        schedule = self.get_object()
        serializer = ScheduleWriteSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        changes = dict(serializer.validated_data)
        if not partial:  # a replacement: what is not given goes back to its default
            for field in ("priority", "interval", "crontab", "start_time", "expires"):
                changes.setdefault(field, None)
        job_schedule_update(periodic_task_id=schedule.pk, **changes)
        return self._answer(schedule.pk)

    def destroy(self, request, pk=None):
        job_schedule_delete(periodic_task_id=self.get_object().pk)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="Enable a schedule",
        parameters=[SCHEDULE_ID],
        request=None,
        responses={200: ScheduleSerializer, **ERRORS(401, 404)},
    )
    @action(detail=True, methods=["post"])
    def enable(self, request, pk=None):
        job_schedule_set_enabled(periodic_task_id=self.get_object().pk, enabled=True)
        return self._answer(int(pk))

    @extend_schema(
        summary="Disable a schedule",
        parameters=[SCHEDULE_ID],
        request=None,
        responses={200: ScheduleSerializer, **ERRORS(401, 404)},
    )
    @action(detail=True, methods=["post"])
    def disable(self, request, pk=None):
        job_schedule_set_enabled(periodic_task_id=self.get_object().pk, enabled=False)
        return self._answer(int(pk))

    @extend_schema(
        summary="Run the schedule's job now (outside its slots)",
        parameters=[SCHEDULE_ID],
        request=None,
        responses={201: JobSerializer, **ERRORS(400, 401, 403, 404)},
    )
    @action(detail=True, methods=["post"], url_path="run-now")
    def run_now(self, request, pk=None):
        job = job_schedule_run_now(periodic_task_id=self.get_object().pk)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)
