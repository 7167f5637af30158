"""The queues in the admin: the list with each queue's state and live figures, a queue's page with
Pause / Resume buttons (and a reason), its rate limit and its audit trail; the list's actions pause
and resume several at once.

Every change goes through ``jobs.queues.services`` with source ``admin``, as the API's do. The
buttons ask ``jobs.queues.permissions.may_change_queue_control``, the question the API asks; the
rest of the page ``jobs.change_queuecontrol``. What the figures and lines show: ``state``.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from ...models import RATE_LIMIT_MAX, RATE_PERIOD_MAX, QueueControl, QueueControlSource, RateLimit, RateLimitScope
from ...queues.permissions import may_change_queue_control
from ...queues.selectors import queue_get, queue_list
from ...queues.services import queue_controls_ensure, queue_pause, queue_resume, rate_limit_clear, rate_limit_set
from .state import POLL_MILLISECONDS, audit_trail_html, figure_html, figure_texts, live_response, state_part_html

ADMIN = QueueControlSource.ADMIN


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


class QueueReasonForm(forms.Form):
    """The reason asked by the Pause / Resume buttons of a queue's page."""

    reason = forms.CharField(
        max_length=500,
        required=False,
        label=gettext_lazy("Reason"),
        widget=forms.TextInput(attrs={"placeholder": gettext_lazy("e.g. deploy, partner API down")}),
    )


@admin.register(QueueControl)
class QueueControlAdmin(admin.ModelAdmin):
    """The queues: state, rate limit and live figures (``state``); a queue's page has Pause /
    Resume buttons with a reason; the list's actions pause and resume several at once."""

    form = QueueControlForm
    change_form_template = "admin/jobs/queuecontrol/change_form.html"
    change_list_template = "admin/jobs/queuecontrol/change_list.html"
    actions = ("pause_queues", "resume_queues")
    readonly_fields = ("name", "audit_trail")
    fieldsets = (
        (None, {"fields": ("name",)}),
        (gettext_lazy("Rate limit"), {"fields": ("rate_limit", "rate_period", "change_reason")}),
        (gettext_lazy("Audit trail"), {"fields": ("audit_trail",)}),
    )

    class Media:
        css = {"all": ("jobs/admin/queues.css",)}
        js = ("jobs/admin/queue_live.js",)

    def get_urls(self):
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        site = self.admin_site
        return [
            path("live/", never_cache(self.live_view), name=f"{prefix}_live"),
            path("<str:name>/pause/", site.admin_view(require_POST(self.pause_view)), name=f"{prefix}_pause"),
            path("<str:name>/resume/", site.admin_view(require_POST(self.resume_view)), name=f"{prefix}_resume"),
            *super().get_urls(),
        ]

    def get_list_display(self, request):
        """The columns, bound to this request's figures (one ``queue_list`` per page)."""
        queues = {queue["name"]: queue for queue in queue_list()}

        @admin.display(description=gettext_lazy("state"))
        def state(control: QueueControl) -> str:
            return state_part_html(queues[control.name])

        def figure(name: str, description):
            @admin.display(description=description)
            def column(control: QueueControl) -> str:
                return figure_html(control.name, name, figure_texts(queues[control.name])[name])

            column.__name__ = name  # the column's CSS class: column-pending, column-held, ...
            return column

        return (
            "name",
            state,
            figure("rate_limit", gettext_lazy("rate limit")),
            figure("pending", gettext_lazy("pending")),
            figure("held", gettext_lazy("of which held")),
            figure("running", gettext_lazy("running")),
            figure("oldest", gettext_lazy("oldest pending")),
        )

    def changelist_view(self, request, extra_context=None):
        queue_controls_ensure()
        return super().changelist_view(request, {**(extra_context or {}), **self._live_context()})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        queue_controls_ensure()
        context = {**(extra_context or {}), **self._live_context()}
        if object_id is not None and object_id in settings.JOB_QUEUES:
            queue = queue_get(name=object_id)
            context.update(
                queue=queue,
                queue_state=state_part_html(queue),
                queue_figures=[
                    (label, figure_html(queue["name"], name, text))
                    for (name, text), label in zip(figure_texts(queue).items(), self._figure_labels, strict=True)
                ],
                may_pause=may_change_queue_control(request.user),
                pause_form=QueueReasonForm(auto_id="id_pause_%s"),
                resume_form=QueueReasonForm(auto_id="id_resume_%s"),
            )
        return super().changeform_view(request, object_id, form_url, context)

    _figure_labels = (
        gettext_lazy("Pending"),
        gettext_lazy("of which held"),
        gettext_lazy("Running"),
        gettext_lazy("Oldest pending"),
        gettext_lazy("Rate limit"),
    )

    def _live_context(self) -> dict:
        return {"live_url": reverse("admin:jobs_queuecontrol_live"), "poll_interval": POLL_MILLISECONDS}

    def get_queryset(self, request):
        return super().get_queryset(request).filter(name__in=settings.JOB_QUEUES).select_related("paused_by")

    @admin.display(description=gettext_lazy("changes (newest first)"))
    def audit_trail(self, control: QueueControl) -> str:
        return format_html(
            '<div data-queue="{}" data-queue-part="audit">{}</div>',
            control.name,
            audit_trail_html(RateLimitScope.QUEUE, control.name),
        )

    def has_add_permission(self, request):
        return False  # the queues are JOB_QUEUES

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        """Only the rate limit is edited here, through the service (pause: the buttons and actions)."""
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

    # --- the live figures and a queue page's buttons ---

    def live_view(self, request: HttpRequest) -> JsonResponse:
        """Not wrapped in admin_view: a poller wants a 403 in JSON, not a redirect to the login page."""
        allowed = self.admin_site.has_permission(request) and self.has_view_permission(request)
        return live_response(request, allowed=allowed)

    def pause_view(self, request: HttpRequest, name: str) -> HttpResponse:
        def paused(changed: bool) -> tuple[str, int]:
            if changed:
                return _("Paused %(name)s: its jobs wait.") % {"name": name}, messages.SUCCESS
            return _("Queue %(name)s was paused already.") % {"name": name}, messages.WARNING

        return self._control(request, name, queue_pause, paused)

    def resume_view(self, request: HttpRequest, name: str) -> HttpResponse:
        def resumed(sent: int | None) -> tuple[str, int]:
            if sent is None:
                return _("Queue %(name)s was not paused.") % {"name": name}, messages.WARNING
            text = ngettext(
                "Resumed %(name)s and sent %(sent)d held job.", "Resumed %(name)s and sent %(sent)d held jobs.", sent
            )
            return text % {"name": name, "sent": sent}, messages.SUCCESS

        return self._control(request, name, queue_resume, resumed)

    def _control(self, request: HttpRequest, name: str, service, outcome) -> HttpResponse:
        """One service call (``queue_pause`` / ``queue_resume``, as the API's), asked of whoever the
        API would let do it; back to the queue's page with what happened."""
        if name not in settings.JOB_QUEUES:
            raise Http404(_("No queue %(name)r.") % {"name": name})
        if not may_change_queue_control(request.user):
            raise PermissionDenied
        page = reverse("admin:jobs_queuecontrol_change", args=[name])
        form = QueueReasonForm(request.POST)
        if not form.is_valid():
            for field, errors in form.errors.items():
                for error in errors:
                    self.message_user(request, f"{form.fields[field].label}: {error}", messages.ERROR)
            return HttpResponseRedirect(page)
        result = service(queue=name, by=request.user, source=ADMIN, reason=form.cleaned_data["reason"])
        self.message_user(request, *outcome(result))
        return HttpResponseRedirect(page)

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
