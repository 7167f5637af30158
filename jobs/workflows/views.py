"""The workflows API (/api/v1/workflows/): DAGs whose every step is a tracked job, owner-scoped like jobs."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from taskhub.errors import InvalidInput
from taskhub.openapi import ERRORS
from taskhub.pagination import StrictCursorPagination

from ..models import Workflow, WorkflowStatus
from . import selectors
from .permissions import OthersWorkflowsPermission
from .serializers import WorkflowCreateSerializer, WorkflowDetailSerializer, WorkflowSerializer
from .services import workflow_cancel, workflow_create, workflow_retry

UUID = "[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"


class WorkflowCursorPagination(StrictCursorPagination):
    ordering = "-created_at"


@extend_schema_view(
    list=extend_schema(
        summary="List workflows",
        parameters=[
            OpenApiParameter("status", str, enum=WorkflowStatus.values, description="Only workflows in this status."),
            OpenApiParameter("name", str, description="Only workflows of this name."),
        ],
        responses={200: WorkflowSerializer(many=True), **ERRORS(400, 401)},
    ),
    retrieve=extend_schema(
        summary="A workflow and its steps", responses={200: WorkflowDetailSerializer, **ERRORS(401, 404)}
    ),
)
class WorkflowViewSet(viewsets.GenericViewSet):
    """Workflows: yours, or everyone's for staff (as jobs). Another user's workflow answers 404."""

    serializer_class = WorkflowSerializer
    permission_classes = (IsAuthenticated, OthersWorkflowsPermission)
    pagination_class = WorkflowCursorPagination
    filter_backends = []
    lookup_value_regex = UUID

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no user
            return Workflow.objects.none()
        return selectors.workflow_list(user=self.request.user)

    def get_object(self):
        workflow = selectors.workflow_get(user=self.request.user, workflow_id=self.kwargs["pk"])
        self.check_object_permissions(self.request, workflow)
        return workflow

    def list(self, request):
        workflows = self.get_queryset()
        wanted = request.query_params.get("status")
        if wanted is not None:
            if wanted not in WorkflowStatus.values:
                message = f"Unknown status {wanted!r}. Allowed: {', '.join(WorkflowStatus.values)}."
                raise InvalidInput(f"status: {message}", fields={"status": [message]})
            workflows = workflows.filter(status=wanted)
        if (name := request.query_params.get("name")) is not None:
            workflows = workflows.filter(name=name)
        page = self.paginate_queryset(workflows)
        return self.get_paginated_response(WorkflowSerializer(page, many=True).data)

    def retrieve(self, request, pk=None):
        return Response(WorkflowDetailSerializer(self.get_object()).data)

    @extend_schema(
        summary="Create a workflow (a DAG of steps, each a job)",
        request=WorkflowCreateSerializer,
        responses={201: WorkflowDetailSerializer, **ERRORS(400, 401, 403, 429)},
    )
    def create(self, request):
        serializer = WorkflowCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workflow = workflow_create(owner=request.user, **serializer.validated_data)
        answer = selectors.workflow_get(user=request.user, workflow_id=workflow.id)
        return Response(WorkflowDetailSerializer(answer).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Cancel every unfinished step (one transaction; running steps get the durable cancel)",
        request=None,
        responses={200: WorkflowDetailSerializer, **ERRORS(401, 403, 404, 409)},
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        workflow = workflow_cancel(user=request.user, workflow_id=self.get_object().id)
        return Response(WorkflowDetailSerializer(workflow).data)

    @extend_schema(
        summary="Re-run the failed steps and the steps cancelled because of them",
        request=None,
        responses={200: WorkflowDetailSerializer, **ERRORS(401, 403, 404, 409, 429)},
    )
    @action(detail=True, methods=["post"])
    def retry(self, request, pk=None):
        workflow = workflow_retry(user=request.user, workflow_id=self.get_object().id)
        return Response(WorkflowDetailSerializer(workflow).data)
