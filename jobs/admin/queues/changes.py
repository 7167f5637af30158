"""The audit trail of queue control in the admin: every pause, resume and rate limit change, in
words, with who, when and from where (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy

from ...models import QueueControlChange
from ...queues.wording import change_text
from ..rendering import json_block_html, when_html


@admin.register(QueueControlChange)
class QueueControlChangeAdmin(admin.ModelAdmin):
    """The audit trail: every pause, resume and rate limit change, with who, when and from where."""

    list_display = ("at_when", "scope", "name", "summary", "actor_label", "source")
    list_filter = ("action", "source", "scope")
    search_fields = ("name", "actor_label", "reason")
    fields = (
        "at",
        "summary",
        "action",
        "scope",
        "name",
        "actor",
        "actor_label",
        "source",
        "before_json",
        "after_json",
        "reason",
    )
    readonly_fields = fields

    @admin.display(description=gettext_lazy("when"), ordering="at")
    def at_when(self, change: QueueControlChange) -> str:
        return when_html(change.at)

    @admin.display(description=gettext_lazy("change"))
    def summary(self, change: QueueControlChange) -> str:
        return change_text(action=change.action, before=change.before, after=change.after, reason=change.reason)

    @admin.display(description=gettext_lazy("before"))
    def before_json(self, change: QueueControlChange) -> str:
        return json_block_html(change.before)

    @admin.display(description=gettext_lazy("after"))
    def after_json(self, change: QueueControlChange) -> str:
        return json_block_html(change.after)

    def has_view_permission(self, request, obj=None):
        return request.user.is_staff and (
            request.user.has_perm("jobs.view_queuecontrol") or request.user.has_perm("jobs.change_queuecontrol")
        )

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
