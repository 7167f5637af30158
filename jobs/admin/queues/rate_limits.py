"""Rate limits of queues and tasks in the admin, set and cleared through ``jobs.queues.services``
(source ``admin``), each with its audit trail in words."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.utils.translation import gettext_lazy

from taskhub.errors import ApplicationError

from ...models import QueueControlSource, RateLimit, RateLimitScope
from ...queues.services import queue_check, rate_limit_clear, rate_limit_set, task_check
from .state import audit_trail_html

ADMIN = QueueControlSource.ADMIN


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
        return audit_trail_html(limit.scope, limit.name)

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
