"""The jobs API: thin viewsets that validate, call one service and serialize the result."""

import re

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from taskhub.errors import InvalidInput
from taskhub.openapi import ERRORS
from taskhub.pagination import StrictCursorPagination

from . import selectors
from .catalog import catalog
from .filters import JobFilter
from .models import Job
from .permissions import OthersJobsPermission
from .serializers import (
    CatalogEntrySerializer,
    JobBulkCreateSerializer,
    JobCreatedSerializer,
    JobCreateSerializer,
    JobEventSerializer,
    JobRetrySerializer,
    JobSerializer,
)
from .services.creation import job_create, job_create_bulk
from .services.operations import job_cancel, job_delete, job_retry
from .services.uniqueness import CREATED_OUTCOMES

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    "Idempotency-Key",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x21-\\x7e]+$"},
    OpenApiParameter.HEADER,
    required=False,
    description="1-255 visible ASCII characters. The same key and body return the first job; "
    "the same key with another body is refused (422).",
)


class JobCursorPagination(StrictCursorPagination):
    """Cursor pages: stable under inserts and no COUNT(*) on a large table. A page reads the jobs not
    running and the running ones apart, in one statement (``JobQuerySet.running_apart``): the list
    orders' indexes leave running jobs out (migration 0026)."""

    ordering = "-created_at"

    def paginate_queryset(self, queryset, request, view=None):
        return super().paginate_queryset(queryset.running_apart(), request, view)


@extend_schema_view(
    list=extend_schema(summary="List jobs", responses={200: JobSerializer(many=True), **ERRORS(400, 401)}),
    retrieve=extend_schema(summary="A job", responses={200: JobSerializer, **ERRORS(401, 404)}),
    destroy=extend_schema(summary="Delete a finished job", responses={204: None, **ERRORS(401, 403, 404, 409)}),
)
class JobViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet):
    """Jobs: yours, or everyone's for staff. Another user's job answers 404; staff acting on it
    need the job permissions (``jobs.permissions``)."""

    serializer_class = JobSerializer
    permission_classes = (IsAuthenticated, OthersJobsPermission)
    pagination_class = JobCursorPagination
    filterset_class = JobFilter
    search_fields = ("name",)
    # Cursor pages follow one nearly unique, never-null field: NULLs (started_at, finished_at)
    # break the cursor, and many equal values (status, progress, name) repeat or skip rows.
    ordering_fields = ("created_at",)
    # A UUID (with or without hyphens); anything else is not a job's URL (404).
    lookup_value_regex = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Job.objects.none()
        if self.action == "list":  # large arguments and results stay out of list pages; the detail has them
            return selectors.job_list_rows(
                user=self.request.user,
                inline_max_bytes=settings.JOB_LIST_INLINE_MAX_BYTES,
                columns=JobSerializer.LIST_COLUMNS,
            )
        return selectors.job_list(user=self.request.user, names_only=True)

    def get_object(self):
        job = selectors.job_get(user=self.request.user, job_id=self.kwargs["pk"], names_only=True)
        self.check_object_permissions(self.request, job)
        return job

    def _idempotency_key(self) -> str | None:
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput(
                "Idempotency-Key: must be 1-255 visible ASCII characters.",
                code="invalid_idempotency_key",
                fields={"Idempotency-Key": ["Must be 1-255 visible ASCII characters."]},
            )
        return key

    @extend_schema(
        summary="Create a job",
        request=JobCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        description="With a `unique` rule (or the task's default one) a duplicate of a job holding the key is "
        'a 200 with that job and its `dedupe_outcome` (README "Unique jobs"); a new job is a 201.',
        responses={201: JobCreatedSerializer, 200: JobCreatedSerializer, **ERRORS(400, 401, 403, 409, 422, 429)},
    )
    def create(self, request):
        key = self._idempotency_key()
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = job_create(owner=request.user, idempotency_key=key, **serializer.validated_data)
        created = getattr(job, "dedupe_outcome", None) in CREATED_OUTCOMES
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(JobCreatedSerializer(job).data, status=answer)

    def perform_destroy(self, instance):
        job_delete(job_id=instance.id)

    @extend_schema(
        summary="Create up to JOB_BULK_MAX jobs at once (all or nothing)",
        description="A body over JOB_BULK_MAX_BYTES is a 413 before any job is read; the first bad job "
        "is the 400 (the others are not checked). Each item answers with its job and `dedupe_outcome`; "
        "the request is a 201 when it created a job, a 200 when every item was a duplicate of a job "
        'holding its key (nothing created, as a single create\'s duplicate: README "Unique jobs").',
        request=JobBulkCreateSerializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={
            201: JobCreatedSerializer(many=True),
            200: JobCreatedSerializer(many=True),
            **ERRORS(400, 401, 403, 409, 413, 422, 429),
        },
    )
    @action(detail=False, methods=["post"])
    def bulk(self, request):
        key = self._idempotency_key()
        if (size := len(request.body)) > settings.JOB_BULK_MAX_BYTES:  # before a job is parsed or checked
            message = f"The body takes {size} bytes; the limit is {settings.JOB_BULK_MAX_BYTES} bytes: send fewer jobs."
            fields = {"jobs": [message]}
            raise InvalidInput(f"jobs: {message}", code="payload_too_large", status_code=413, fields=fields)
        serializer = JobBulkCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        jobs = job_create_bulk(owner=request.user, items=serializer.validated_data["jobs"], idempotency_key=key)
        created = any(getattr(job, "dedupe_outcome", None) in CREATED_OUTCOMES for job in jobs)
        answer = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return Response(JobCreatedSerializer(jobs, many=True).data, status=answer)

    @extend_schema(summary="Cancel a job", request=None, responses={200: JobSerializer, **ERRORS(401, 403, 404, 409)})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        job = self.get_object()
        return Response(JobSerializer(job_cancel(job_id=job.id, by=request.user)).data)

    @extend_schema(
        summary="Run a failed, revoked or expired job again, optionally with new args, kwargs or priority",
        description="Without a body the job runs again as it was. With one (edit and retry), the given "
        "`args`, `kwargs` and `priority` replace the job's, checked against the task as a create's are "
        "(400 naming the field, nothing changed); the retry's timeline line records each changed key "
        "before and after, and who changed it. Another user's job needs the jobs.change_job permission "
        "(operators): a viewer gets 403.",
        request=JobRetrySerializer,
        responses={200: JobSerializer, **ERRORS(400, 401, 403, 404, 409, 429)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        job = self.get_object()
        serializer = JobRetrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        retried = job_retry(job_id=job.id, by=request.user, **serializer.validated_data)
        return Response(JobSerializer(retried).data)

    @extend_schema(summary="The job's timeline", responses={200: JobEventSerializer(many=True), **ERRORS(401, 404)})
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None, filter_backends=[])
    def events(self, request, pk=None):
        job = self.get_object()
        events = selectors.job_events(job=job)
        return Response(JobEventSerializer(events, many=True, context=self.get_serializer_context()).data)


@extend_schema_view(
    list=extend_schema(summary="Registered tasks", responses={200: CatalogEntrySerializer(many=True), **ERRORS(401)}),
)
class TaskCatalogViewSet(viewsets.ViewSet):
    """The tasks a job may run, with their parameters and policies."""

    def list(self, request):
        entries = [e.describe() for e in catalog.entries() if request.user.is_staff or not e.staff_only]
        return Response(CatalogEntrySerializer(entries, many=True).data)
