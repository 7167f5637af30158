"""Who may act on a job through the API.

Owners act on their own jobs without any permission. Staff with ``jobs.view_job`` see every job
(``selectors.job_list``; without it, their own) but cancel, retry or delete someone else's only
with the Django permission the admin asks for too: "change" to cancel or retry (the admin's
"operate"), "delete" to delete. Whoever may not see another user's job never gets this far: it
is not found for them (404).
"""

from __future__ import annotations

from rest_framework.permissions import BasePermission

# The permission acting on another user's job needs, per viewset action.
OTHERS_JOBS_PERMISSIONS = {
    "cancel": "jobs.change_job",
    "retry": "jobs.change_job",
    "destroy": "jobs.delete_job",
}
_VERBS = {"cancel": "cancel", "retry": "retry", "destroy": "delete"}


class OthersJobsPermission(BasePermission):
    """Object permission: an operation on a job the caller does not own needs its permission."""

    code = "permission_denied"

    def has_object_permission(self, request, view, obj) -> bool:
        needed = OTHERS_JOBS_PERMISSIONS.get(getattr(view, "action", None))
        if needed is None or obj.owner_id == request.user.pk or request.user.has_perm(needed):
            return True
        # DRF reads the refusal's message from the permission instance (one per request).
        self.message = f"You may not {_VERBS[view.action]} another user's job: that needs the {needed} permission."
        return False
