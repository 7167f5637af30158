"""Which import paths a job may name for Django's task API (``standard_task``): product code of
installed apps only. Test code, migrations and management commands are refused before anything is
imported; the suite's own task module runs only because the test settings name it
(TASKS_ALLOWED_TEST_MODULES), not because of where it lives. Refusals never echo an import error."""

import logging

import pytest

from conftest import assert_error
from jobs.models import Job
from jobs.tasks.django_backend import TaskRefused, standard_task

SUITE_MODULE = "jobs.tests.standard_tasks"

NOT_PRODUCT_CODE = [
    "jobs.tests.no_such_module.run",  # never imported: the refusal is not an import error
    "jobs.tests.admin.test_admin_browser.run",  # imports playwright
    "jobs.tests.admin.conftest.run",
    "jobs.tests.tasks.test_task_paths.run",
    "jobs.management.commands.cleanup_jobs.Command",
    "jobs.migrations.initial.run",
    "rest_framework.test.APIClient",
    "django.contrib.staticfiles.testing.StaticLiveServerTestCase",
]


@pytest.mark.parametrize("path", NOT_PRODUCT_CODE)
def test_test_code_migrations_and_commands_are_refused_before_any_import(path):
    with pytest.raises(TaskRefused) as refused:
        standard_task(path)
    message = str(refused.value)
    assert message.startswith(f"{path} is not product code"), message
    assert "Error" not in message and "No module" not in message


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["jobs.tests.admin.test_admin_browser.run", "jobs.no_such_module.run"])
def test_the_api_refuses_them_without_echoing_an_import_error(user_client, path):
    response = user_client.post("/api/v1/jobs/", {"celery_task_name": "django_task", "kwargs": {"task": path}})
    body = assert_error(response, 400, "invalid_arguments", "kwargs")
    for leaked in ("Error", "No module", "playwright", "cannot be imported"):
        assert leaked not in body["message"], body
    assert not Job.objects.exists()


def test_an_import_error_is_logged_not_told(caplog):
    with caplog.at_level(logging.WARNING, logger="jobs.tasks.django_backend"):
        with pytest.raises(TaskRefused) as refused:
            standard_task("jobs.no_such_module.run")
    assert str(refused.value) == "unknown task path jobs.no_such_module.run."
    assert "ModuleNotFoundError" in caplog.text and "jobs.no_such_module" in caplog.text


def test_the_suites_task_module_runs_only_by_the_explicit_setting(settings):
    assert settings.TASKS_ALLOWED_TEST_MODULES == [SUITE_MODULE]  # make test's environment
    assert standard_task(f"{SUITE_MODULE}.add").module_path == f"{SUITE_MODULE}.add"

    settings.TASKS_ALLOWED_TEST_MODULES = []  # production's default
    with pytest.raises(TaskRefused, match="is not product code"):
        standard_task(f"{SUITE_MODULE}.add")
    # The setting names modules, not folders: another test module stays refused.
    settings.TASKS_ALLOWED_TEST_MODULES = [SUITE_MODULE]
    with pytest.raises(TaskRefused, match="is not product code"):
        standard_task("jobs.tests.factories.JobFactory")
