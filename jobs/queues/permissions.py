"""Who may read and change queue control: the API's permission class and the admin's Pause / Resume
buttons ask the same question (``may_change_queue_control``)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

QUEUE_CONTROL_PERMISSION = "jobs.change_queuecontrol"


def may_change_queue_control(user) -> bool:
    """Pausing, resuming and rate limits: staff members with ``jobs.change_queuecontrol``
    (superusers have it; the operator role gives it)."""
    return bool(user and user.is_authenticated and user.is_staff and user.has_perm(QUEUE_CONTROL_PERMISSION))


class QueueControlPermission(BasePermission):
    """Queue control is for staff: they read it; pausing, resuming and rate limits also need
    ``jobs.change_queuecontrol`` (superusers have it; give it to operators in the admin). Other
    users get a 403: the counts cover every user's jobs."""

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_staff):
            self.message = "Queue control is for staff members."
            return False
        if request.method in ("GET", "HEAD", "OPTIONS") or may_change_queue_control(user):
            return True
        self.message = f"Changing queue control needs the {QUEUE_CONTROL_PERMISSION} permission."
        return False
