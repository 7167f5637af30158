"""taskhub/checks.py: a setting that names a module which moved fails `manage.py check`, naming the setting."""

import sys

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from taskhub.checks import beat_schedule_tasks_registered, find_entry_point, settings_paths_import


def run_checks() -> list:
    return settings_paths_import(None) + beat_schedule_tasks_registered(None)


def with_key(setting: str, key: str, value) -> dict:
    """``setting`` (a dict) with ``key`` replaced: what override_settings is given."""
    return {setting: {**getattr(settings, setting), key: value}}


def with_beat_task(entry: str, task: str) -> dict:
    schedule = settings.CELERY_BEAT_SCHEDULE
    return {"CELERY_BEAT_SCHEDULE": {**schedule, entry: {**schedule[entry], "task": task}}}


def test_the_real_settings_name_only_what_imports():
    assert run_checks() == []
    call_command("check")  # registered, and nothing else fails either


# (what to override, the setting the error names, the path it names, what the hint says)
MOVED = {
    "beat scheduler": (
        lambda: {"CELERY_BEAT_SCHEDULER": "jobs.moved.scheduler:JobScheduler"},
        "CELERY_BEAT_SCHEDULER",
        "jobs.moved.scheduler:JobScheduler",
        "ModuleNotFoundError: No module named 'jobs.moved'",
    ),
    "beat scheduler class": (
        lambda: {"CELERY_BEAT_SCHEDULER": "jobs.schedules.scheduler:RenamedScheduler"},
        "CELERY_BEAT_SCHEDULER",
        "jobs.schedules.scheduler:RenamedScheduler",
        'ImportError: Module "jobs.schedules.scheduler" does not define "RenamedScheduler"',
    ),
    "spectacular postprocessing hook": (
        lambda: with_key("SPECTACULAR_SETTINGS", "POSTPROCESSING_HOOKS", ["jobs.moved.openapi.add_stream_paths"]),
        "SPECTACULAR_SETTINGS['POSTPROCESSING_HOOKS']",
        "jobs.moved.openapi.add_stream_paths",
        "No module named 'jobs.moved'",
    ),
    "spectacular preprocessing hook": (
        lambda: with_key("SPECTACULAR_SETTINGS", "PREPROCESSING_HOOKS", ["jobs.streams.openapi.renamed_hook"]),
        "SPECTACULAR_SETTINGS['PREPROCESSING_HOOKS']",
        "jobs.streams.openapi.renamed_hook",
        'does not define a "renamed_hook" attribute/class',
    ),
    "REST framework parser": (
        lambda: with_key("REST_FRAMEWORK", "DEFAULT_PARSER_CLASSES", ["taskhub.moved.SafeJSONParser"]),
        "REST_FRAMEWORK['DEFAULT_PARSER_CLASSES']",
        "taskhub.moved.SafeJSONParser",
        "No module named 'taskhub.moved'",
    ),
    "REST framework exception handler": (
        lambda: with_key("REST_FRAMEWORK", "EXCEPTION_HANDLER", "taskhub.moved.exception_handler"),
        "REST_FRAMEWORK['EXCEPTION_HANDLER']",
        "taskhub.moved.exception_handler",
        "No module named 'taskhub.moved'",
    ),
    "REST framework pagination": (
        lambda: with_key("REST_FRAMEWORK", "DEFAULT_PAGINATION_CLASS", "taskhub.pagination.RenamedPagination"),
        "REST_FRAMEWORK['DEFAULT_PAGINATION_CLASS']",
        "taskhub.pagination.RenamedPagination",
        'does not define a "RenamedPagination" attribute/class',
    ),
    "simplejwt class": (
        lambda: with_key("SIMPLE_JWT", "TOKEN_USER_CLASS", "accounts.moved.TokenUser"),
        "SIMPLE_JWT['TOKEN_USER_CLASS']",
        "accounts.moved.TokenUser",
        "No module named 'accounts.moved'",
    ),
    "task backend": (
        lambda: {"TASKS": {"default": {**settings.TASKS["default"], "BACKEND": "jobs.moved.TaskhubBackend"}}},
        "TASKS['default']['BACKEND']",
        "jobs.moved.TaskhubBackend",
        "No module named 'jobs.moved'",
    ),
    "middleware": (
        lambda: {"MIDDLEWARE": [*settings.MIDDLEWARE[:-1], "taskhub.moved.SynchronousChainMiddleware"]},
        "MIDDLEWARE",
        "taskhub.moved.SynchronousChainMiddleware",
        "No module named 'taskhub.moved'",
    ),
    "URLconf": (
        lambda: {"ROOT_URLCONF": "taskhub.moved_urls"},
        "ROOT_URLCONF",
        "taskhub.moved_urls",
        "No module named 'taskhub.moved_urls'",
    ),
    "WSGI application": (
        lambda: {"WSGI_APPLICATION": "taskhub.moved_wsgi.application"},
        "WSGI_APPLICATION",
        "taskhub.moved_wsgi.application",
        "No module named 'taskhub.moved_wsgi'",
    ),
    "ASGI application": (
        lambda: {"ASGI_APPLICATION": "taskhub.asgi.app"},
        "ASGI_APPLICATION",
        "taskhub.asgi.app",
        'Module "taskhub.asgi" does not define "app"',
    ),
    "e-mail backend": (
        lambda: {"EMAIL_BACKEND": "taskhub.moved.EmailBackend"},
        "EMAIL_BACKEND",
        "taskhub.moved.EmailBackend",
        "No module named 'taskhub.moved'",
    ),
    "password validator": (
        lambda: {"AUTH_PASSWORD_VALIDATORS": [{"NAME": "accounts.moved.Validator"}]},
        "AUTH_PASSWORD_VALIDATORS",
        "accounts.moved.Validator",
        "No module named 'accounts.moved'",
    ),
}


@pytest.mark.parametrize(("override", "setting", "path", "hint"), MOVED.values(), ids=MOVED.keys())
def test_a_path_that_does_not_import_is_an_error_naming_the_setting(override, setting, path, hint):
    with override_settings(**override()):
        errors = run_checks()

    assert [error.id for error in errors] == ["taskhub.E001"]
    assert errors[0].msg == f"{setting} names {path!r}, which cannot be imported."
    assert hint in errors[0].hint


MISSING_TASKS = {
    "module moved": (
        "jobs.tasks.moved_tasks.purge_jobs",
        "ModuleNotFoundError: No module named 'jobs.tasks.moved_tasks'",
    ),
    "task renamed": (
        "jobs.tasks.maintenance_tasks.purge_everything",
        "jobs.tasks.maintenance_tasks imports but registers no task named "
        "'jobs.tasks.maintenance_tasks.purge_everything'",
    ),
    "not a task name": ("purge_jobs", "the name of a registered task"),
}


@pytest.mark.parametrize(("task", "hint"), MISSING_TASKS.values(), ids=MISSING_TASKS.keys())
def test_a_beat_entry_naming_no_registered_task_is_an_error(task, hint):
    with override_settings(**with_beat_task("taskhub-purge-jobs", task)):
        errors = run_checks()

    assert [error.id for error in errors] == ["taskhub.E002"]
    assert errors[0].msg == (
        f"CELERY_BEAT_SCHEDULE['taskhub-purge-jobs']['task'] names {task!r}, which is not a registered Celery task."
    )
    assert hint in errors[0].hint


def test_manage_py_check_fails_naming_the_setting():
    with (
        override_settings(CELERY_BEAT_SCHEDULER="jobs.moved.scheduler:JobScheduler"),
        pytest.raises(SystemCheckError, match=r"\(taskhub\.E001\) CELERY_BEAT_SCHEDULER names 'jobs\.moved"),
    ):
        call_command("check")


def test_web_entry_points_are_found_without_being_run(monkeypatch):
    """Importing taskhub.wsgi would set Django up again and build a handler: the check only reads it."""
    monkeypatch.delitem(sys.modules, "taskhub.wsgi", raising=False)

    find_entry_point("taskhub.wsgi.application")
    with pytest.raises(ImportError, match='does not define "app" at top level'):
        find_entry_point("taskhub.wsgi.app")
    assert "taskhub.wsgi" not in sys.modules
