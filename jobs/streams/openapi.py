"""The live progress streams in the OpenAPI document (a drf-spectacular postprocessing hook).

The streams are plain async Django views, which drf-spectacular does not see: this hook adds their
paths, with ``text/event-stream`` answers, the state's JSON schema, and the list's filter
parameters copied from ``GET /api/v1/jobs/`` (the same ``JobFilter``).
"""

from __future__ import annotations

import copy
from typing import Any

from ..filters import JobFilter
from ..models import JobPriority, JobStatus, WorkflowStatus

_TIME = {"type": "string", "format": "date-time", "nullable": True}
STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The `data:` of an `event: state`: a job's fields that change while it runs.",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": list(JobStatus.values)},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100},
        "progress_message": {"type": "string"},
        "progress_meta": {"type": "object", "additionalProperties": {}},
        "result": {"nullable": True},
        "error": {"type": "string"},
        "attempts": {"type": "integer", "description": "Retries so far (0 on the first run)."},
        "attempt": {"type": "integer", "description": "The attempt running or last run, from 1 (attempts + 1)."},
        "started_at": _TIME,
        "finished_at": _TIME,
        "cancel_requested_at": _TIME,
    },
    "required": ["id", "status", "progress", "attempts", "attempt"],
}
LIST_STATE_SCHEMA: dict[str, Any] = {
    "allOf": [{"$ref": "#/components/schemas/JobStreamState"}],
    "type": "object",
    "description": "The `data:` of the list stream's `event: state`: the changing fields, and what a list "
    "names a job by.",
    "properties": {
        "name": {"type": "string"},
        "celery_task_name": {"type": "string"},
        "task_type": {"type": "string"},
        "priority": {"type": "string", "enum": list(JobPriority.values)},
        "owner_id": {"type": "integer"},
        "created_at": {"type": "string", "format": "date-time"},
    },
}
WORKFLOW_STATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "The `data:` of a workflow stream's `event: workflow`: the workflow's own fields that change.",
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "name": {"type": "string"},
        "status": {"type": "string", "enum": list(WorkflowStatus.values)},
        "progress": {"type": "integer", "minimum": 0, "maximum": 100, "description": "Finished steps / steps, %."},
        "steps_total": {"type": "integer"},
        "steps_succeeded": {"type": "integer"},
        "steps_failed": {"type": "integer"},
        "steps_cancelled": {"type": "integer"},
        "finished_at": _TIME,
    },
    "required": ["id", "name", "status", "progress", "steps_total", "steps_succeeded", "steps_failed"],
}
WORKFLOW_EVENTS = (
    "Server-sent events (`text/event-stream`) of a workflow and its steps. At once: each active or recent "
    "step's state (`event: state`, the list stream's data: a step is a job), then the workflow's own "
    "state (`event: workflow`: status, progress, counts); then an `event: state` per change of a step "
    "(released from waiting, started, progressing, finished) and an `event: workflow` per change of the "
    "workflow's status or progress, after the changes of the steps that caused it. Once the workflow is "
    "finished (succeeded, failed or cancelled) and none of its steps runs or is released to run, "
    "`event: end` (`{id, status}`, the workflow's) closes the stream; a retry after that needs a new "
    "stream. A deleted workflow ends it with `event: end` `{status: null, deleted: true}`. Keep-alives, "
    "limits, authentication and `event: closed` as for the job streams."
)
EVENTS = (
    "Server-sent events (`text/event-stream`). The current state comes at once (`event: state`), then "
    "one `event: state` per change of status, progress, message, metadata, attempt or timestamps; each "
    "has an `id:`. A comment (`: keep-alive`) is sent every JOB_STREAM_KEEPALIVE seconds (15) while idle. "
    "Reconnecting (with `Last-Event-ID` or not) starts again with the current state. The stream closes "
    "after JOB_STREAM_MAX_SECONDS (an hour); reconnect then. Bearer token or session cookie (a "
    "browser's EventSource cannot send an Authorization header). At most JOB_STREAM_MAX_PER_USER (10) "
    "open streams per user (429 beyond). The user and token are checked again every keep-alive: a "
    "stream whose token expired, whose user was deactivated, changed password or staff flag, ends with "
    "`event: closed` (`data:` `{code, message}`, the API's error codes); so does every stream when the "
    "server stops (`server_shutdown`)."
)
LAST_EVENT_ID = {
    "in": "header",
    "name": "Last-Event-ID",
    "required": False,
    "schema": {"type": "string"},
    "description": "Sent by EventSource when it reconnects; the stream starts with the current state anyway.",
}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _operation(*, operation_id, summary, description, tag, parameters, security, schema, errors) -> dict:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "description": description,
            "tags": [tag],
            "parameters": parameters,
            "security": security,
            "responses": {
                "200": {
                    "description": description,
                    "content": {"text/event-stream": {"schema": {"type": "string"}, "x-event-data": schema}},
                },
                **errors,
            },
        }
    }


def add_stream_paths(result: dict, generator, request, public) -> dict:
    """Add ``/api/v1/{jobs,tasks}/stream/``, ``/api/v1/{jobs,tasks}/{id}/stream/`` and
    ``/api/v1/workflows/{id}/stream/``."""
    paths = result.setdefault("paths", {})
    listing = paths.get("/api/v1/jobs/", {}).get("get")
    detail = paths.get("/api/v1/jobs/{id}/", {}).get("get")
    if listing is None or detail is None:
        return result  # a partial document (e.g. other URL patterns): nothing to attach to
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas["JobStreamState"] = STATE_SCHEMA
    schemas["JobListStreamState"] = LIST_STATE_SCHEMA
    security = detail.get("security", [])
    id_parameter = next(p for p in detail["parameters"] if p["in"] == "path" and p["name"] == "id")
    filters = [copy.deepcopy(p) for p in listing.get("parameters", []) if p["name"] in JobFilter.base_filters]
    unauthorized = {
        "401": _error("Not authenticated, or the token is invalid or expired."),
        "429": _error("Too many open streams (JOB_STREAM_MAX_PER_USER), or throttled; see Retry-After."),
    }
    for prefix, tag in (("jobs", "jobs"), ("tasks", "tasks")):
        paths[f"/api/v1/{prefix}/stream/"] = _operation(
            operation_id=f"{prefix}_stream_list",
            summary="Live changes of the jobs you may see (server-sent events)",
            description=EVENTS + " Owners see their own jobs, staff all; the list's filters apply. "
            "Starts with the active jobs (pending, running); never ends by itself.",
            tag=tag,
            parameters=[*copy.deepcopy(filters), LAST_EVENT_ID],
            security=security,
            schema={"$ref": "#/components/schemas/JobListStreamState"},
            errors={"400": _error("A filter's value is invalid (the message names it)."), **unauthorized},
        )
        paths[f"/api/v1/{prefix}/{{id}}/stream/"] = _operation(
            operation_id=f"{prefix}_stream",
            summary="Live progress of a job (server-sent events)",
            description=EVENTS + " After a terminal state (succeeded, failed, revoked, expired) comes `event: end` "
            "and the stream closes.",
            tag=tag,
            parameters=[copy.deepcopy(id_parameter), LAST_EVENT_ID],
            security=security,
            schema={"$ref": "#/components/schemas/JobStreamState"},
            errors={**unauthorized, "404": _error("Not found (or not yours).")},
        )
    workflow = paths.get("/api/v1/workflows/{id}/", {}).get("get")
    if workflow is not None:
        schemas["WorkflowStreamState"] = WORKFLOW_STATE_SCHEMA
        paths["/api/v1/workflows/{id}/stream/"] = _operation(
            operation_id="workflows_stream",
            summary="Live changes of a workflow and its steps (server-sent events)",
            description=WORKFLOW_EVENTS,
            tag=(workflow.get("tags") or ["workflows"])[0],
            parameters=[
                copy.deepcopy(next(p for p in workflow["parameters"] if p["in"] == "path" and p["name"] == "id")),
                LAST_EVENT_ID,
            ],
            security=workflow.get("security", security),
            schema={
                "oneOf": [
                    {"$ref": "#/components/schemas/JobListStreamState"},
                    {"$ref": "#/components/schemas/WorkflowStreamState"},
                ],
                "description": "`event: state`: JobListStreamState (a step); `event: workflow`: WorkflowStreamState.",
            },
            errors={**unauthorized, "404": _error("Not found (or not yours).")},
        )
    return result
