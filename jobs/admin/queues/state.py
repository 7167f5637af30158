"""A queue's live state in the admin: one place decides what its state line ("Paused by alice at
10:41:07 — reason: deploy"), its figures (pending, held, running, the oldest pending job's age, the
rate limit in words) and its audit trail (in words) show, in the HTML of the list and the page and
in the JSON of the ``live/`` view, which ``jobs/admin/queue_live.js`` polls to refresh them in place.

The figures come from ``jobs.queues.selectors.queue_list`` (what the API's /api/v1/queues/ shows);
the words from ``jobs.queues.wording``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _

from taskhub.errors import error_body

from ...models import RateLimitScope
from ...queues.selectors import queue_change_list, queue_list
from ...queues.wording import change_text, rate_text
from ..rendering import duration_text, when_html

# How often the list and the page ask for fresh figures.
POLL_MILLISECONDS = 3000
# The newest audit lines a queue's (or a task limit's) page shows; the audit list has them all.
AUDIT_LINES = 20
# The figures of a queue, as data-queue-figure names.
FIGURES = ("pending", "held", "running", "oldest", "rate_limit")


def state_html(queue: dict[str, Any]) -> SafeString:
    """ "Running", or "Paused by alice at <time> — reason: deploy" (who: "system" for a command
    run without --user)."""
    if not queue["paused"]:
        return format_html("{}", _("Running"))
    line = format_html(
        '<span class="queue-state--paused">{} {}</span>',
        _("Paused by %(who)s at") % {"who": queue["paused_by"] or "system"},
        when_html(queue["paused_at"]),
    )
    if queue["reason"]:
        return format_html("{} — {}", line, _("reason: %(reason)s") % {"reason": queue["reason"]})
    return line


def figure_texts(queue: dict[str, Any]) -> dict[str, str]:
    """The figures as the page shows them: counts, the oldest age ("42s", "3m 5s", "-"), the rate limit."""
    seconds = queue["oldest_pending_seconds"]
    return {
        "pending": str(queue["pending"]),
        "held": str(queue["held"]),
        "running": str(queue["running"]),
        "oldest": "-" if seconds is None else duration_text(timedelta(seconds=seconds)),
        "rate_limit": rate_text(queue["rate_limit"]),
    }


def figure_html(queue_name: str, figure: str, text: str) -> SafeString:
    return format_html('<span data-queue="{}" data-queue-figure="{}">{}</span>', queue_name, figure, text)


def state_part_html(queue: dict[str, Any]) -> SafeString:
    return format_html('<span data-queue="{}" data-queue-part="state">{}</span>', queue["name"], state_html(queue))


def audit_trail_html(scope: str, name: str) -> SafeString:
    """The newest changes of a queue or a task's limit, each in words with its reason."""
    changes = queue_change_list().filter(scope=scope, name=name)[:AUDIT_LINES]
    if not changes:
        return format_html("{}", _("No changes yet."))
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                when_html(change.at),
                change_text(action=change.action, before=change.before, after=change.after, reason=change.reason),
                change.actor_label,
                change.get_source_display(),
            )
            for change in changes
        ),
    )
    return format_html(
        '<table class="queue-audit"><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        _("when"),
        _("change"),
        _("who"),
        _("from"),
        rows,
    )


def live_queue(queue: dict[str, Any]) -> dict[str, Any]:
    """One queue in the live view's JSON: the counts as numbers, the other figures as the page shows them."""
    return {
        "name": queue["name"],
        "paused": queue["paused"],
        "state": str(state_html(queue)),
        **figure_texts(queue),
        "pending": queue["pending"],
        "held": queue["held"],
        "running": queue["running"],
        "oldest_pending_seconds": queue["oldest_pending_seconds"],
    }


def live_response(request: HttpRequest, *, allowed: bool) -> JsonResponse:
    """``{"queues": [...]}`` for every queue; with ``?queue=<name>`` also that queue's
    ``audit_trail`` (HTML). ``allowed``: whether the user may see queue control at all; if not, a
    403 in JSON, as a poller wants, rather than a redirect to the login page."""
    if not allowed:
        return JsonResponse(error_body("permission_denied", _("Queue control is for staff members.")), status=403)
    body: dict[str, Any] = {"queues": [live_queue(queue) for queue in queue_list()]}
    name = request.GET.get("queue")
    if name is not None:
        if name not in settings.JOB_QUEUES:
            queues = ", ".join(settings.JOB_QUEUES)
            message = _("queue: %(name)r is not a queue. Queues: %(queues)s.") % {"name": name, "queues": queues}
            return JsonResponse(error_body("unknown_queue", message, {"queue": [message]}), status=400)
        body["audit_trail"] = str(audit_trail_html(RateLimitScope.QUEUE, name))
    return JsonResponse(body)
