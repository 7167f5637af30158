"""Loading the task packages at start (taskhub/plugins.py says where they come from).

``load_task_packages`` runs once per process, from ``JobsConfig.ready`` right after the built-in tasks:
it imports each plugin app's ``tasks`` module, each ``TASKHUB_TASK_MODULES`` module and each entry
point that names a task module. The first one that fails to import, registers a task name another
task has, or declares a schema that is not valid stops the process with a PluginError naming the
package and the problem: a process never serves a half-loaded catalog.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from importlib import import_module

from celery import current_app
from django.apps import apps
from django.conf import settings

from taskhub.plugins import PluginError, package_of

from ..catalog import catalog

logger = logging.getLogger("taskhub.plugins")


@dataclass(frozen=True)
class TaskModule:
    """A module to import at start and what names it (an entry point, an app, a setting)."""

    module: str
    package: str  # "distribution version", or the top-level module of one that is no distribution
    origin: str


def task_modules() -> list[TaskModule]:
    """Every task module the settings and the discovered entry points name, each once, in order:
    the plugin apps' ``tasks`` modules, TASKHUB_TASK_MODULES, the entry points' task modules."""
    found: dict[str, TaskModule] = {}
    apps_by_entry = {plugin.app: plugin for plugin in settings.TASKHUB_PLUGINS if plugin.is_app}
    for entry in settings.TASKHUB_PLUGIN_APPS:
        config = next(
            c for c in apps.get_app_configs() if entry in (c.name, f"{type(c).__module__}.{type(c).__name__}")
        )
        module = f"{config.name}.tasks"
        if importlib.util.find_spec(module) is None:
            continue
        plugin = apps_by_entry.get(entry)
        origin = plugin.origin if plugin else f"TASKHUB_APPS {entry!r}"
        found.setdefault(module, TaskModule(module, plugin.package if plugin else _package(module), origin))
    for module in settings.TASKHUB_TASK_MODULES:
        found.setdefault(module, TaskModule(module, _package(module), f"TASKHUB_TASK_MODULES {module!r}"))
    for plugin in settings.TASKHUB_PLUGINS:
        if not plugin.is_app:
            found.setdefault(plugin.module, TaskModule(plugin.module, plugin.package, plugin.origin))
    return list(found.values())


def _package(module: str) -> str:
    name, version = package_of(module)
    return f"{name} {version}" if version else name


def load_task_packages() -> list[tuple[TaskModule, list[str]]]:
    """Import every task module; return each with the catalog names it added. Logs what was loaded."""
    loaded = []
    sources = task_modules()
    # Celery keeps the first task of a name: a package's task named as one of taskhub's Celery tasks
    # (e.g. a maintenance task, which is in no catalog) would be listed but never run.
    celery_tasks = set(current_app.tasks.keys()) if sources else set()
    for source in sources:
        before = {entry.name for entry in catalog.entries()}
        try:
            import_module(source.module)
            added = sorted({entry.name for entry in catalog.entries()} - before)
            if taken := [name for name in added if name in celery_tasks]:
                raise ValueError(f"Task name {taken[0]!r} is a Celery task of taskhub's already")
        except Exception as exc:  # whatever the import raises is the reason
            problem = str(exc).rstrip(".")
            raise PluginError(
                f"The task package {source.package} cannot be loaded: {source.origin} names the module "
                f"{source.module!r}, whose import failed with {type(exc).__name__}: {problem}. Fix the package, "
                "uninstall it, or leave it out (TASKHUB_APPS, TASKHUB_TASK_MODULES; TASKHUB_PLUGIN_DISCOVERY=false "
                "turns the taskhub.plugins entry points off)."
            ) from exc
        loaded.append((source, added))
        celery_tasks.update(added)
    if loaded:
        logger.info(
            "Task packages loaded: %s",
            "; ".join(f"{s.package} ({s.module}: {', '.join(names) or 'no tasks'})" for s, names in loaded),
        )
    return loaded
