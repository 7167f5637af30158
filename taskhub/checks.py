"""System checks of the settings: every dotted path they name imports, and every task beat's schedule
names is a registered Celery task. A module that moved then fails `manage.py check` (and runserver,
migrate, a worker's start) with the setting's name, instead of the first request, e-mail or beat tick
that needs it. Registered by jobs.apps.JobsConfig.ready().

- taskhub.E001: a setting names a dotted path (``a.b.C``, or Celery's ``a.b:C``) that does not import.
- taskhub.E002: a CELERY_BEAT_SCHEDULE entry names a task the Celery app has not registered.

Cheap at every start: the modules are those the process imports anyway (middleware, URLconf, API
classes, backends, hooks). WSGI_APPLICATION and ASGI_APPLICATION are not run (importing them sets
Django up again and builds a web handler): their module must exist and bind the name at top level.
Not here, because Django already fails on them at startup: INSTALLED_APPS, LOGGING, DEFAULT_AUTO_FIELD.
"""

import ast
import importlib.util
import sys
from collections.abc import Callable, Iterator
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.checks import Error, register
from django.utils.module_loading import import_string

# Settings of libraries that import some of their keys' values: each library's own list of those keys.
LIBRARY_SETTINGS = {
    "REST_FRAMEWORK": "rest_framework.settings",
    "SIMPLE_JWT": "rest_framework_simplejwt.settings",
    "SPECTACULAR_SETTINGS": "drf_spectacular.settings",
}


def import_object(path: str) -> Any:
    """What ``a.b.C`` or ``a.b:C`` (Celery's form, e.g. CELERY_BEAT_SCHEDULER) names."""
    if ":" not in path:
        return import_string(path)
    module_name, _, attributes = path.partition(":")
    found = import_module(module_name)
    for name in attributes.split("."):
        try:
            found = getattr(found, name)
        except AttributeError:
            raise ImportError(f'Module "{module_name}" does not define "{attributes}"') from None
    return found


def find_entry_point(path: str) -> None:
    """``module.name`` of a web entry point, without running the module: it must exist and bind
    ``name`` at top level (or, once imported, have it)."""
    module_name, _, name = path.rpartition(".")
    if module_name in sys.modules:
        if not hasattr(sys.modules[module_name], name):
            raise ImportError(f'Module "{module_name}" does not define "{name}"')
        return
    spec = importlib.util.find_spec(module_name)  # ModuleNotFoundError when a parent package is missing
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named '{module_name}'", name=module_name)
    if name not in _top_level_names(ast.parse(spec.loader.get_source(module_name) or "")):
        raise ImportError(f'Module "{module_name}" does not define "{name}" at top level')


def _top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).partition(".")[0] for alias in node.names)
        else:  # assignments, also under if / try / with
            names.update(n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store))
    return names


def _database_backend(engine: str) -> None:
    import_module(f"{engine}.base")  # as django.db.utils.load_backend does


def named_paths() -> Iterator[tuple[str, Any, Callable[[str], Any]]]:
    """(setting, dotted path, how to import it) for every dotted path the settings name."""
    for path in settings.MIDDLEWARE:
        yield "MIDDLEWARE", path, import_object
    yield "ROOT_URLCONF", settings.ROOT_URLCONF, import_module
    for setting in ("WSGI_APPLICATION", "ASGI_APPLICATION"):
        if getattr(settings, setting, None):
            yield setting, getattr(settings, setting), find_entry_point
    for index, template in enumerate(settings.TEMPLATES):
        yield f"TEMPLATES[{index}]['BACKEND']", template["BACKEND"], import_object
        for path in template.get("OPTIONS", {}).get("context_processors", []):
            yield f"TEMPLATES[{index}]['OPTIONS']['context_processors']", path, import_object
    for validator in settings.AUTH_PASSWORD_VALIDATORS:
        yield "AUTH_PASSWORD_VALIDATORS", validator["NAME"], import_object
    for alias, database in settings.DATABASES.items():
        yield f"DATABASES[{alias!r}]['ENGINE']", database["ENGINE"], _database_backend
    for alias, cache in settings.CACHES.items():
        yield f"CACHES[{alias!r}]['BACKEND']", cache["BACKEND"], import_object
    for alias, storage in settings.STORAGES.items():
        yield f"STORAGES[{alias!r}]['BACKEND']", storage["BACKEND"], import_object
    yield "EMAIL_BACKEND", settings.EMAIL_BACKEND, import_object
    for setting, library in LIBRARY_SETTINGS.items():
        imported_keys = getattr(import_module(library), "IMPORT_STRINGS", ())
        for key, value in getattr(settings, setting, {}).items():
            if key in imported_keys:
                for path in value if isinstance(value, list | tuple) else [value]:
                    yield f"{setting}[{key!r}]", path, import_object
    for alias, backend in getattr(settings, "TASKS", {}).items():
        yield f"TASKS[{alias!r}]['BACKEND']", backend["BACKEND"], import_object
    if getattr(settings, "CELERY_BEAT_SCHEDULER", None):
        yield "CELERY_BEAT_SCHEDULER", settings.CELERY_BEAT_SCHEDULER, import_object


@register()
def settings_paths_import(app_configs, **kwargs) -> list[Error]:
    errors = []
    for setting, path, load in named_paths():
        if not isinstance(path, str):  # a class or function given as such: already imported
            continue
        try:
            load(path)
        except Exception as exc:  # noqa: BLE001 (whatever the import raises is the reason)
            errors.append(
                Error(
                    f"{setting} names {path!r}, which cannot be imported.",
                    hint=f"{type(exc).__name__}: {exc}",
                    id="taskhub.E001",
                )
            )
    return errors


@register()
def beat_schedule_tasks_registered(app_configs, **kwargs) -> list[Error]:
    from taskhub.celery import app

    registered = app.tasks  # finalizes the app: every task of an imported module is registered
    errors = []
    for entry, options in getattr(settings, "CELERY_BEAT_SCHEDULE", {}).items():
        task = options.get("task")
        if isinstance(task, str) and task in registered:
            continue
        hint = _why_unregistered(task, registered)
        if hint is not None:
            errors.append(
                Error(
                    f"CELERY_BEAT_SCHEDULE[{entry!r}]['task'] names {task!r}, which is not a registered Celery task.",
                    hint=hint,
                    id="taskhub.E002",
                )
            )
    return errors


def _why_unregistered(task: Any, registered) -> str | None:
    """Why ``task`` is not registered, after importing the module its name starts with (which may
    register it: then None)."""
    if not isinstance(task, str) or "." not in task:
        return "A beat entry's task is the name of a registered task, e.g. 'jobs.tasks.maintenance_tasks.purge_jobs'."
    module_name = task.rpartition(".")[0]
    try:
        import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (whatever the import raises is the reason)
        return f"{type(exc).__name__}: {exc}"
    if task in registered:
        return None
    return f"{module_name} imports but registers no task named {task!r} (the name of @shared_task(name=...))."
