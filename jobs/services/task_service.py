"""The original specification's ``task_service``: its calls, on top of the services.

Import it as the specification does: ``from jobs.services.task_service import task_service``.
"""

from __future__ import annotations

from typing import Any

from accounts.models import User
from taskhub.errors import ApplicationError

from ..models import MANUAL_RETRY_STATUSES, Job, JobPriority, JobStatus
from .creation import job_create
from .execution import RunState, job_fail, job_start, job_succeed, job_update_progress
from .operations import job_cancel, job_delete, job_retry


class TaskService:
    """The spec's ``TaskService``. ``db`` is accepted for compatibility and ignored (Django manages connections)."""

    def create_task(
        self,
        db=None,
        *,
        name: str,
        celery_task_name: str,
        task_type: str = "",
        args: list | None = None,
        kwargs: dict | None = None,
        priority: str = JobPriority.NORMAL,
        user_id: int,
    ) -> tuple[Job, str]:
        owner = User.objects.get(pk=user_id)
        job = job_create(
            owner=owner,
            name=name,
            task_type=task_type,
            celery_task_name=celery_task_name,
            args=args,
            kwargs=kwargs,
            priority=priority,
        )
        return job, str(job.id)

    def get_task(self, db=None, task_id=None) -> Job | None:
        return Job.objects.filter(id=task_id).first()

    def cancel_task(self, db=None, task_id=None) -> bool:
        try:
            job_cancel(job_id=task_id)
        except ApplicationError:
            return False
        return True

    def delete_task(self, db=None, task_id=None) -> bool:
        try:
            job_delete(job_id=task_id)
        except ApplicationError:
            return False
        return True

    def update_task_progress(self, db=None, task_id=None, progress: int = 0, meta: dict | None = None) -> bool:
        return job_update_progress(job_id=task_id, progress=progress, meta=meta) is RunState.OK

    def update_task_status(
        self, db=None, task_id=None, status: str = "", progress: int | None = None, result: Any = None
    ) -> bool:
        """Move a job to ``status`` through the state machine (illegal moves return False)."""
        job = Job.objects.filter(id=task_id).only("status", "attempts").first()
        if job is None:
            return False
        try:
            if status == JobStatus.RUNNING:
                return job_start(job_id=task_id, worker="task_service") is not None
            if status == JobStatus.SUCCEEDED:
                job_succeed(job_id=task_id, attempts=job.attempts, result=result)
            elif status == JobStatus.FAILED:
                job_fail(job_id=task_id, attempts=job.attempts, error=str(result or "failed"), auto_retry=False)
            elif status == JobStatus.REVOKED:
                job_cancel(job_id=task_id)
            elif status == JobStatus.PENDING and job.status in MANUAL_RETRY_STATUSES:
                job_retry(job_id=task_id)
            else:
                return False
        except ApplicationError:
            return False
        return True


task_service = TaskService()
