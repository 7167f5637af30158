"""The test cases of the django-tasks backport (the reference implementation of Django's standard
task API, vendor/django_tasks_backport: its tests/tests/test_tasks.py, of version 0.12.0 on the
Django 5.2 leg and of its newest commit, with Django 6's names, on the Django 6 leg) run against
taskhub's backend.

Adapted is the configuration only: the backend under test is taskhub's (``TASKS["default"]``, where
the backport's file names its DummyBackend), the tables are emptied after each case (a
TransactionTestCase: taskhub's results are job rows) instead of the DummyBackend's list, the
backport's task module is allowed to run (TASKS_ALLOWED_TEST_MODULES), on Django 6 the
backport's logger name ``django_tasks`` is the built-in's ``django.tasks``, and the one case that
calls the synchronous ``refresh()`` inside a coroutine runs with DJANGO_ALLOW_ASYNC_UNSAFE (Django
refuses database queries in an event loop otherwise, whatever the backend). Each case left out is
overridden below with a skip that says why: what it asserts is one backend's, not the standard's.
"""

import os
import unittest
from unittest import mock

from asgiref.sync import async_to_sync
from django.test import TransactionTestCase, override_settings

from jobs.tasks import standard_api
from jobs.tests.standard.vendor import backport_tasks, backport_test_tasks

TASKHUB_BACKEND = "jobs.tasks.django_backend.TaskhubBackend"


def left_out(reason: str):
    return unittest.skip(f"left out: {reason}")(lambda self: None)


@override_settings(
    TASKS={
        "default": {"BACKEND": TASKHUB_BACKEND, "QUEUES": ["default", "high_priority", "low_priority"]},
        "immediate": {"BACKEND": f"{standard_api.PACKAGE}.backends.immediate.ImmediateBackend", "QUEUES": []},
        "missing": {"BACKEND": "does.not.exist"},
    },
    TASKS_ALLOWED_TEST_MODULES=[backport_tasks.__name__],
)
class TaskhubTaskTestCase(backport_test_tasks.TaskTestCase, TransactionTestCase):
    def setUp(self) -> None:
        """The backport's setUp empties the DummyBackend's list; here TransactionTestCase empties the tables."""

    def assertLogs(self, logger=None, level=None):  # noqa: N802 - unittest's name
        return super().assertLogs(standard_api.PACKAGE if logger == "django_tasks" else logger, level)

    def test_refresh_result(self) -> None:
        with mock.patch.dict(os.environ, {"DJANGO_ALLOW_ASYNC_UNSAFE": "true"}):
            async_to_sync(super().test_refresh_result)()

    test_using_correct_backend = left_out("asserts the default backend is the backport's DummyBackend")
    test_get_backend = left_out("asserts the default backend is the backport's DummyBackend")
    test_enqueue_task = left_out("ends reading DummyBackend.results (a DummyBackend attribute)")
    test_enqueue_task_async = left_out("ends reading DummyBackend.results (a DummyBackend attribute)")
    test_using_queue_name = left_out(
        "uses a queue named queue_1; taskhub's backend takes taskhub's queue names only (default, "
        "high_priority, low_priority), InvalidTask for any other"
    )
    test_module_path = left_out("asserts the path of the task module in the backport's repository (tests.tasks)")
