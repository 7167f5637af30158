"""Test files of the standard task API's own repositories, copied as they are (each with its licence
and the commit it comes from), run against taskhub's backend by jobs/tests/standard/test_*.py.

django_tasks_backport/: the backport's tests/ at two commits. v0_12_0 is the version the Django 5.2
leg installs (requirements/base.txt); main is the newest, whose exception names are Django 6's
(InvalidTask, InvalidTaskBackend), for the Django 6 leg. Only these names differ between the two.

The files import ``django_tasks`` and their task module as ``tests.tasks``: both names are made to
mean here what they mean in their repository, nothing in the files is changed. On Django 6 (no
backport installed) ``django_tasks`` and its modules are Django's built-in ``django.tasks``, the
API taskhub's backend belongs to there (jobs/tasks/standard_api.py).
"""

import sys
from importlib import import_module

from jobs.tasks import standard_api

if standard_api.PACKAGE == "django_tasks":
    from .django_tasks_backport.v0_12_0 import tests as backport_tests
else:
    for _module in (
        "",
        ".base",
        ".exceptions",
        ".signals",
        ".backends",
        ".backends.base",
        ".backends.dummy",
        ".backends.immediate",
    ):
        sys.modules.setdefault(f"django_tasks{_module}", import_module(f"{standard_api.PACKAGE}{_module}"))
    from .django_tasks_backport.main import tests as backport_tests

sys.modules.setdefault("tests", backport_tests)
backport_tasks = import_module(f"{backport_tests.__name__}.tasks")
backport_test_tasks = import_module(f"{backport_tests.__name__}.tests.test_tasks")
