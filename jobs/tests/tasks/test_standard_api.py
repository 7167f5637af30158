"""Which ``django.tasks`` taskhub's backend belongs to: the backport on Django 5.2, the built-in
one on Django 6 (chosen by Django's version, no setting; the Django 6 leg installs no backport)."""

import importlib.metadata
from importlib import import_module

import django
import pytest

from jobs.tasks import standard_api
from jobs.tasks.django_backend import TaskhubBackend

EXPECTED = "django.tasks" if django.VERSION >= (6, 0) else "django_tasks"


def test_the_api_comes_from_the_package_of_this_django():
    assert standard_api.PACKAGE == EXPECTED
    api = import_module(EXPECTED)
    assert standard_api.task is api.task
    assert standard_api.task_backends is api.task_backends
    assert standard_api.Task is import_module(f"{EXPECTED}.base").Task
    assert issubclass(TaskhubBackend, import_module(f"{EXPECTED}.backends.base").BaseTaskBackend)


@pytest.mark.skipif(django.VERSION < (6, 0), reason="the built-in django.tasks is Django 6's")
def test_on_django_6_the_builtin_task_backends_hold_taskhubs_backend():
    from django.tasks import task_backends

    with pytest.raises(importlib.metadata.PackageNotFoundError):  # the Django 6 leg installs no backport
        importlib.metadata.distribution("django-tasks")
    assert isinstance(task_backends["default"], TaskhubBackend)
