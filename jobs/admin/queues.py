"""Queue control in the admin: pause and resume queues (actions), edit their rate limits, rate
limits of tasks, and the audit trail of every change (also shown on each queue's page).

Every change goes through ``jobs.queues.services`` with source ``admin``, as the API's do; the
page asks for ``jobs.change_queuecontrol`` to change anything.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy, ngettext

from taskhub.errors import ApplicationError

from ..models import (
    RATE_LIMIT_MAX,
    RATE_PERIOD_MAX,
    QueueControl,
    QueueControlChange,
    QueueControlSource,
    RateLimit,
    RateLimitScope,
)
from ..queues.selectors import queue_change_list, queue_list
from ..queues.services import (
    queue_check,
    queue_controls_ensure,
    queue_pause,
    queue_resume,
    rate_limit_clear,
    rate_limit_set,
    task_check,
)
from .rendering import json_block_html, when_html

ADMIN = QueueControlSource.ADMIN


def _changes_html(scope: str, name: str) -> str:
    changes = queue_change_list().filter(scope=scope, name=name)[:20]
    if not changes:
        return "-"
    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td><td>{}</td></tr>",
        (
            (
                when_html(c.at),
                c.get_action_display(),
                c.actor_label,
                c.get_source_display(),
                c.before,
                c.after,
                c.reason,
            )
            for c in changes
        ),
    )
    return format_html(
        "<table><thead><tr><th>when</th><th>what</th><th>who</th><th>from</th><th>change</th><th>why</th>"
        "</tr></thead><tbody>{}</tbody></table>",
        rows,
    )


class QueueControlForm(forms.ModelForm):
    """A queue's rate limit (both empty: none) and why it changes."""

    rate_limit = forms.IntegerField(
        min_value=1, max_value=RATE_LIMIT_MAX, required=False, help_text=gettext_lazy("Starts allowed per period.")
    )
    rate_period = forms.IntegerField(
        min_value=1, max_value=RATE_PERIOD_MAX, required=False, help_text=gettext_lazy("The period, in seconds.")
    )
    change_reason = forms.CharField(max_length=500, required=False, label=gettext_lazy("Why"))

    class Meta:
        model = QueueControl
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        limit = RateLimit.objects.filter(scope=RateLimitScope.QUEUE, name=self.instance.name).first()
        if limit:
            self.initial.update(rate_limit=limit.limit, rate_period=limit.period)

    def clean(self):
        data = super().clean()
        if (data.get("rate_limit") is None) != (data.get("rate_period") is None) and not self.errors:
            raise forms.ValidationError(gettext_lazy("Give both the limit and the period, or neither (no limit)."))
        return data


@admin.register(QueueControl)
class QueueControlAdmin(admin.ModelAdmin):
    """The queues: paused or running, rate limit, active jobs; pause and resume are actions."""

    form = QueueControlForm
    list_display = (
        "name",
        "state",
        "paused_since",
        "paused_by",
        "reason",
        "rate_limit",
        "pending",
        "unsent",
        "running",
    )
    actions = ("pause_queues", "resume_queues")
    readonly_fields = ("name", "state", "paused_since", "paused_by", "reason", "audit_trail")
    fieldsets = (
        (None, {"fields": ("name", "state", "paused_since", "paused_by", "reason")}),
        (gettext_lazy("Rate limit"), {"fields": ("rate_limit", "rate_period", "change_reason")}),
        (gettext_lazy("Audit trail"), {"fields": ("audit_trail",)}),
    )

    def changelist_view(self, request, extra_context=None):
        queue_controls_ensure()
        self._queues = {queue["name"]: queue for queue in queue_list()}
        return super().changelist_view(request, extra_context)

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        queue_controls_ensure()
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_queryset(self, request):
        return super().get_queryset(request).filter(name__in=settings.JOB_QUEUES).select_related("paused_by")

    def _count(self, control: QueueControl, key: str):
        return getattr(self, "_queues", {}).get(control.name, {}).get(key, "-")

    @admin.display(description=gettext_lazy("state"))
    def state(self, control: QueueControl) -> str:
        if control.paused:
            return format_html('<strong style="color: #ba2121">{}</strong>', gettext_lazy("paused"))
        return gettext_lazy("running")

    @admin.display(description=gettext_lazy("paused since"))
    def paused_since(self, control: QueueControl) -> str:
        return when_html(control.paused_at)

    @admin.display(description=gettext_lazy("rate limit"))
    def rate_limit(self, control: QueueControl) -> str:
        limit = RateLimit.objects.filter(scope=RateLimitScope.QUEUE, name=control.name).first()
        return f"{limit.limit} per {limit.period}s" if limit else "-"

    @admin.display(description=gettext_lazy("pending"))
    def pending(self, control: QueueControl):
        return self._count(control, "pending")

    @admin.display(description=gettext_lazy("of which unsent"))
    def unsent(self, control: QueueControl):
        return self._count(control, "unsent")

    @admin.display(description=gettext_lazy("running"))
    def running(self, control: QueueControl):
        return self._count(control, "running")

    @admin.display(description=gettext_lazy("changes (newest first)"))
    def audit_trail(self, control: QueueControl) -> str:
        return _changes_html(RateLimitScope.QUEUE, control.name)

    def has_add_permission(self, request):
        return False  # the queues are JOB_QUEUES

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Only the rate limit is edited here, through the service (pause: the list's actions)."""
        limit, period = form.cleaned_data.get("rate_limit"), form.cleaned_data.get("rate_period")
        reason = form.cleaned_data.get("change_reason", "")
        if limit is None:
            rate_limit_clear(scope=RateLimitScope.QUEUE, name=obj.name, by=request.user, source=ADMIN, reason=reason)
        else:
            rate_limit_set(
                scope=RateLimitScope.QUEUE,
                name=obj.name,
                limit=limit,
                period=period,
                by=request.user,
                source=ADMIN,
                reason=reason,
            )

    @admin.action(description=gettext_lazy("Pause the selected queues"), permissions=["change"])
    def pause_queues(self, request, queryset):
        paused = sum(queue_pause(queue=q.name, by=request.user, source=ADMIN) for q in queryset)
        self.message_user(
            request,
            ngettext("Paused %(n)d queue: its jobs wait.", "Paused %(n)d queues: their jobs wait.", paused)
            % {"n": paused},
            messages.SUCCESS,
        )

    @admin.action(description=gettext_lazy("Resume the selected queues"), permissions=["change"])
    def resume_queues(self, request, queryset):
        resumed, sent = 0, 0
        for control in queryset:
            result = queue_resume(queue=control.name, by=request.user, source=ADMIN)
            if result is not None:
                resumed, sent = resumed + 1, sent + result
        self.message_user(
            request,
            ngettext(
                "Resumed %(n)d queue and sent %(sent)d held jobs.",
                "Resumed %(n)d queues and sent %(sent)d held jobs.",
                resumed,
            )
            % {"n": resumed, "sent": sent},
            messages.SUCCESS,
        )


class RateLimitForm(forms.ModelForm):
    change_reason = forms.CharField(max_length=500, required=False, label=gettext_lazy("Why"))

    class Meta:
        model = RateLimit
        fields = ("scope", "name", "limit", "period")
        help_texts = {"name": gettext_lazy("A queue, or a task's name or alias from the catalog.")}

    def _post_clean(self):
        """The service checks the target (queue or catalog task) and the numbers; its refusal is shown
        on the field it names."""
        super()._post_clean()
        data = self.cleaned_data
        if "name" not in data or "scope" not in data:
            return
        try:
            check = queue_check if data["scope"] == RateLimitScope.QUEUE else task_check
            data["name"] = check(data["name"], field="name")
        except ApplicationError as exc:
            self.add_error("name", exc.message.split(": ", 1)[-1])


@admin.register(RateLimit)
class RateLimitAdmin(admin.ModelAdmin):
    """Rate limits of queues and tasks: at most ``limit`` starts in any ``period`` seconds."""

    form = RateLimitForm
    list_display = ("scope", "name", "limit", "period", "updated_at", "updated_by")
    list_filter = ("scope",)
    readonly_fields = ("updated_at", "updated_by", "audit_trail")

    def get_fields(self, request, obj=None):
        fields = ["scope", "name", "limit", "period", "change_reason"]
        return fields if obj is None else [*fields, "updated_at", "updated_by", "audit_trail"]

    def get_readonly_fields(self, request, obj=None):
        return ("scope", "name", *self.readonly_fields) if obj else self.readonly_fields

    @admin.display(description=gettext_lazy("changes (newest first)"))
    def audit_trail(self, limit: RateLimit) -> str:
        return _changes_html(limit.scope, limit.name)

    def get_changeform_initial_data(self, request):
        return {"scope": RateLimitScope.TASK, **super().get_changeform_initial_data(request)}

    def save_model(self, request, obj, form, change):
        saved = rate_limit_set(
            scope=obj.scope,
            name=obj.name,
            limit=obj.limit,
            period=obj.period,
            by=request.user,
            source=ADMIN,
            reason=form.cleaned_data.get("change_reason", ""),
        )
        obj.pk = saved.pk

    def delete_model(self, request, obj):
        rate_limit_clear(scope=obj.scope, name=obj.name, by=request.user, source=ADMIN)

    def delete_queryset(self, request, queryset):
        for limit in queryset:
            self.delete_model(request, limit)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("jobs.change_queuecontrol")

    def has_add_permission(self, request):
        return request.user.has_perm("jobs.change_queuecontrol")

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("jobs.change_queuecontrol")

    def has_view_permission(self, request, obj=None):
        return request.user.is_staff and (
            request.user.has_perm("jobs.view_queuecontrol") or request.user.has_perm("jobs.change_queuecontrol")
        )


@admin.register(QueueControlChange)
class QueueControlChangeAdmin(admin.ModelAdmin):
    """The audit trail: every pause, resume and rate limit change, with who, when and from where."""

    list_display = ("at_when", "action", "scope", "name", "actor_label", "source", "before_after", "reason")
    list_filter = ("action", "source", "scope")
    search_fields = ("name", "actor_label", "reason")
    fields = ("at", "action", "scope", "name", "actor", "actor_label", "source", "before_json", "after_json", "reason")
    readonly_fields = fields

    @admin.display(description=gettext_lazy("when"), ordering="at")
    def at_when(self, change: QueueControlChange) -> str:
        return when_html(change.at)

    @admin.display(description=gettext_lazy("change"))
    def before_after(self, change: QueueControlChange) -> str:
        return f"{change.before} → {change.after}"

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
