"""The workflows' admin: the list (status, progress, steps) and a workflow's page with its DAG drawn
(inline SVG, each step a box coloured by its status, linked to its job's page), and the Cancel / Retry
actions, through ``jobs.workflows.services`` (as the API's).

The page is live: ``jobs/admin/workflow_live.js`` asks the ``<id>/live/`` view (JSON: the DAG's SVG,
the status, progress and counts as the page shows them) every ``POLL_MILLISECONDS`` while the workflow
can still change by itself (``active``: not finished, or a step running or released), and puts them in
place without a reload, so the steps' colours follow them as they run and finish. Once it cannot, it asks
every ``IDLE_POLL_MILLISECONDS`` only: a retry made elsewhere (the API, another tab) still shows."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field
from django.http import HttpRequest, JsonResponse
from django.urls import path, reverse
from django.utils.html import escape, format_html
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache

from taskhub.errors import ApplicationError, error_body

from ..models import Workflow
from ..workflows import selectors
from ..workflows.serializers import WAITING
from ..workflows.services import workflow_cancel, workflow_retry

# The DAG is drawn up to this many steps (a larger one is listed, not drawn).
DRAW_MAX_STEPS = 300
POLL_MILLISECONDS = 2000
IDLE_POLL_MILLISECONDS = 15_000  # a finished workflow changes only when someone retries it
LIVE_FIELDS = ("status", "progress_percent", "counts", "finished_at")
FINISHED = ("succeeded", "failed", "cancelled")
COLOURS = {
    WAITING: "#d0d7de",
    "pending": "#9ecbff",
    "running": "#f6c343",
    "succeeded": "#4caf50",
    "failed": "#e5534b",
    "revoked": "#8c959f",
}
BOX_W, BOX_H, GAP_X, GAP_Y = 130, 28, 50, 14


def _status(step: dict) -> str:
    return WAITING if step["status"] == "pending" and step["parents_remaining"] else step["status"]


def dag_svg(steps: list[dict]) -> str:
    """The DAG as inline SVG: a column per depth (the longest path from a step without parents)."""
    depth: dict[str, int] = {}
    for step in steps:  # creation order: parents before children
        depth[step["workflow_step"]] = 1 + max((depth.get(parent, 0) for parent in step["after"]), default=-1)
    columns: dict[int, list[dict]] = defaultdict(list)
    for step in steps:
        columns[depth[step["workflow_step"]]].append(step)
    where = {}
    for column, members in columns.items():
        for row, step in enumerate(members):
            where[step["workflow_step"]] = (column * (BOX_W + GAP_X) + 5, row * (BOX_H + GAP_Y) + 5)
    width = (max(columns) + 1) * (BOX_W + GAP_X) if columns else 0
    height = max(len(members) for members in columns.values()) * (BOX_H + GAP_Y) + 10 if columns else 0
    parts = [
        f'<svg class="workflow-dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
    ]
    for step in steps:
        x, y = where[step["workflow_step"]]
        for parent in step["after"]:
            px, py = where[parent]
            parts.append(
                f'<line x1="{px + BOX_W}" y1="{py + BOX_H / 2}" x2="{x}" y2="{y + BOX_H / 2}" stroke="#8c959f"/>'
            )
    for step in steps:
        x, y = where[step["workflow_step"]]
        status = _status(step)
        url = reverse("admin:jobs_job_change", args=[step["id"]])
        name = escape(step["workflow_step"])
        parts.append(
            f'<a href="{url}"><g data-step="{name}" data-status="{status}"><title>{name}: {status}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="4" fill="{COLOURS[status]}" stroke="#57606a"/>'
            f'<text x="{x + 6}" y="{y + 18}" font-size="12">{escape(step["workflow_step"][:18])}</text></g></a>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _active(workflow: Workflow, steps: list[dict] | None) -> bool:
    """Whether the workflow can still change by itself: not finished, or a step running or released."""
    if workflow.status not in FINISHED:
        return True
    return steps is not None and any(step["status"] == "running" or _status(step) == "pending" for step in steps)


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "status", "progress_percent", "steps_total", "created_at", "finished_at")
    list_filter = ("status", "on_failure")
    search_fields = ("name",)
    actions = ("cancel", "retry")
    fields = ("id", "name", "owner", "on_failure", "status", "progress_percent", "counts", "created_at",
              "finished_at", "dag")  # fmt: skip
    readonly_fields = fields

    class Media:
        js = ("jobs/admin/workflow_live.js",)

    def get_queryset(self, request):
        return selectors.workflow_list(user=request.user)

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_live"
        return [path("<uuid:object_id>/live/", never_cache(self.live_view), name=name), *super().get_urls()]

    def live_view(self, request: HttpRequest, object_id) -> JsonResponse:
        """The page's changing parts (JSON). Not wrapped in admin_view: a poller wants a 403 in JSON,
        not a redirect to the login page; another user's workflow is a 404, as on its page."""
        if not (self.admin_site.has_permission(request) and self.has_view_permission(request)):
            return JsonResponse(error_body("permission_denied", "You may not view workflows."), status=403)
        workflow = self.get_queryset(request).filter(id=object_id).first()
        if workflow is None:
            return JsonResponse(error_body("not_found", f"Workflow {object_id} not found."), status=404)
        steps = selectors.workflow_steps(workflow_id=workflow.id) if workflow.steps_total <= DRAW_MAX_STEPS else None
        fields = {name: str(self._field(workflow, name)) for name in LIVE_FIELDS}
        return JsonResponse(
            {
                "id": str(workflow.id),
                "status": workflow.status,
                "progress": workflow.progress,
                "fields": fields,
                "dag": dag_svg(steps) if steps is not None else None,
                "active": _active(workflow, steps),
            }
        )

    def _field(self, workflow: Workflow, name: str) -> str:
        if name == "status":
            return workflow.get_status_display()
        if name == "finished_at":
            return display_for_field(workflow.finished_at, Workflow._meta.get_field("finished_at"), "-")
        return getattr(self, name)(workflow)

    @admin.display(description=gettext_lazy("progress"))
    def progress_percent(self, workflow: Workflow) -> str:
        return f"{workflow.progress}% ({workflow.steps_finished}/{workflow.steps_total})"

    @admin.display(description=gettext_lazy("steps"))
    def counts(self, workflow: Workflow) -> str:
        return (
            f"{workflow.steps_succeeded} succeeded, {workflow.steps_failed} failed, "
            f"{workflow.steps_cancelled} cancelled, of {workflow.steps_total}"
        )

    @admin.display(description=gettext_lazy("steps (the DAG)"))
    def dag(self, workflow: Workflow) -> str:
        if workflow.steps_total > DRAW_MAX_STEPS:
            steps, drawn = (
                None,
                format_html(
                    "{} steps: too many to draw (GET /api/v1/workflows/{}/ lists them).",
                    workflow.steps_total,
                    workflow.id,
                ),
            )
        else:
            steps = selectors.workflow_steps(workflow_id=workflow.id)
            drawn = mark_safe(dag_svg(steps))  # dag_svg escapes every step id it writes
        return format_html(
            '<div data-workflow-dag data-live-url="{}" data-interval="{}" data-idle-interval="{}" '
            'data-active="{}">{}</div>',
            reverse("admin:jobs_workflow_live", args=[workflow.id]),
            POLL_MILLISECONDS,
            IDLE_POLL_MILLISECONDS,
            "true" if _active(workflow, steps) else "false",
            drawn,
        )

    def has_add_permission(self, request):
        return False  # POST /api/v1/workflows/ or jobs.workflows.workflow_create

    def has_change_permission(self, request, obj=None):
        return False  # read-only page; cancel and retry are actions

    def has_delete_permission(self, request, obj=None):
        return False  # retention deletes a finished workflow with its steps

    def has_operate_permission(self, request) -> bool:
        return request.user.has_perm("jobs.change_job")

    def _each(self, request, queryset, service, done: str) -> None:
        count = 0
        for workflow in queryset:
            try:
                service(user=request.user, workflow_id=workflow.id)
                count += 1
            except ApplicationError as exc:
                self.message_user(request, f"{workflow.name}: {exc.message}", messages.WARNING)
        if count:
            self.message_user(request, f"{count} workflow(s) {done}.", messages.SUCCESS)

    @admin.action(description=gettext_lazy("Cancel the selected workflows"), permissions=("operate",))
    def cancel(self, request, queryset):
        self._each(request, queryset, workflow_cancel, "cancelled")

    @admin.action(description=gettext_lazy("Retry the selected workflows"), permissions=("operate",))
    def retry(self, request, queryset):
        self._each(request, queryset, workflow_retry, "retried")
