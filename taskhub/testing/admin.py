"""Helpers for the job admin's tests (client and browser): job rows in any state, the admin's URLs,
its roles and their members, its messages. The fixtures built on them (``roles``, ``operator``,
``owner``, ``operator_client``) are in jobs/tests/admin/conftest.py.
"""

import importlib

from django.apps import apps as global_apps
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.utils import timezone

from accounts.tests.factories import UserFactory
from jobs.models import TERMINAL_STATUSES, Job, JobEvent, JobEventKind, JobStatus

TASK = "jobs.tasks.common_tasks.long_running_task"
CHANGELIST = "/admin/jobs/job/"
PROGRESS = "/admin/jobs/job/progress/"

_roles_migration = importlib.import_module("accounts.migrations.0002_operator_roles")
_queue_roles_migration = importlib.import_module("accounts.migrations.0004_queue_control_roles")
_urgent_roles_migration = importlib.import_module("accounts.migrations.0005_user_max_running")


def make_job(owner, status=JobStatus.PENDING, **fields) -> Job:
    """A job row in the given state (set up directly: the admin is what is under test)."""
    now = timezone.now()
    values = {
        "name": f"{status} job",
        "celery_task_name": TASK,
        "priority": "normal",
        "queue": "default",
        "status": status,
        "created_at": now,
    }
    if status != JobStatus.PENDING:
        values.update(started_at=now, heartbeat_at=now, worker="celery@test")
    if status in TERMINAL_STATUSES:
        values["finished_at"] = now
    values.update(fields)
    job = Job.objects.create(owner=owner, **values)
    JobEvent.objects.create(
        job=job,
        kind=JobEventKind.CREATED,
        to_status=JobStatus.PENDING,
        actor=owner,
        actor_label=f"user {owner.username}",
        message="Created on queue default with priority normal.",
    )
    return job


def change_url(job: Job) -> str:
    return f"/admin/jobs/job/{job.pk}/change/"


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def run_action(client, action: str, jobs, **extra):
    data = {"action": action, "_selected_action": [str(job.pk) for job in jobs], **extra}
    return client.post(CHANGELIST, data, follow=True)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def ensure_roles() -> dict[str, Group]:
    """The viewer and operator groups, made by the accounts migration's own code.

    The migration made them when the test database was created, but every transactional test
    flushes the tables (and ``--reuse-db`` keeps the flushed database), so tests make sure.
    """
    with connection.schema_editor() as editor:
        _roles_migration.create_roles(global_apps, editor)
        _queue_roles_migration.add_permissions(global_apps, editor)
        _urgent_roles_migration.add_permissions(global_apps, editor)
    return {group.name: group for group in Group.objects.filter(name__in=_roles_migration.ROLES)}


def member_of(group_name: str, **fields):
    """A staff user (not a superuser) whose only permissions come from the given role."""
    user = UserFactory(is_staff=True, **fields)
    user.groups.add(Group.objects.get(name=group_name))
    return user
