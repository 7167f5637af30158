"""Who may act on a workflow through the API: as for jobs (``jobs.permissions``). Owners act on their
own; staff who see every workflow cancel or retry another user's with ``jobs.change_job``."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

OTHERS_WORKFLOWS_PERMISSION = "jobs.change_job"


class OthersWorkflowsPermission(BasePermission):
    code = "permission_denied"

    def has_object_permission(self, request, view, obj) -> bool:
        if getattr(view, "action", None) not in ("cancel", "retry") or obj.owner_id == request.user.pk:
            return True
        if request.user.has_perm(OTHERS_WORKFLOWS_PERMISSION):
            return True
        self.message = (
            f"You may not {view.action} another user's workflow: that needs the {OTHERS_WORKFLOWS_PERMISSION} "
            "permission."
        )
        return False
