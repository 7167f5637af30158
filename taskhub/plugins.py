"""Task packages (plugins): where a team's own tasks come from, without an edit of taskhub.

Three ways, read by the settings (taskhub/settings/plugins.py) before Django starts:

- ``TASKHUB_APPS``: Django apps appended to INSTALLED_APPS (models, migrations, admin, ``@task``
  functions); each app's ``tasks`` module, if it has one, is imported at start.
- ``TASKHUB_TASK_MODULES``: modules imported at start (Celery's ``imports``).
- Entry points of the group ``taskhub.plugins`` declared by installed distributions, found without
  any setting (``TASKHUB_PLUGIN_DISCOVERY=false`` turns this off). An entry point names a Django
  app (a package with an ``apps.py``, or ``package.apps:SomeConfig``) or a task module.

jobs/tasks/plugins.py imports the task modules at start in every process (web, worker, beat,
commands); a broken one stops the process with a :class:`PluginError` naming its package. Nothing
here imports a plugin: discovery reads installed metadata only.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

ENTRY_POINT_GROUP = "taskhub.plugins"
TASKHUB_PACKAGE = "taskhub"
PROJECT_DIR = Path(__file__).resolve().parent.parent
DOTTED_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(ImproperlyConfigured):
    """A task package cannot be loaded: the process stops before it serves anything."""


@dataclass(frozen=True)
class Plugin:
    """What one entry point of the ``taskhub.plugins`` group declares."""

    entry_point: str  # its name in the group
    value: str  # what it names: "package", "package.module" or "package.apps:Config"
    distribution: str
    version: str
    is_app: bool

    @property
    def app(self) -> str:
        """The INSTALLED_APPS entry of an app plugin: the package, or the AppConfig's dotted path."""
        module, _, attribute = self.value.partition(":")
        return f"{module.strip()}.{attribute.strip()}" if attribute else module.strip()

    @property
    def module(self) -> str:
        return self.value.partition(":")[0].strip()

    @property
    def package(self) -> str:
        return f"{self.distribution} {self.version}"

    @property
    def origin(self) -> str:
        return f"entry point {ENTRY_POINT_GROUP} {self.entry_point!r} = {self.value!r}"


def dotted_names(setting: str, values: list[str]) -> list[str]:
    """A comma-separated setting's module names, stripped, empty items dropped; an item that is not a
    dotted Python name is an ImproperlyConfigured naming the setting."""
    names = []
    for value in values:
        name = value.strip()
        if not name:
            continue
        if not DOTTED_NAME.match(name):
            raise ImproperlyConfigured(
                f"{setting} names {name!r}, which is not a dotted Python module name (e.g. my_tasks.jobs)."
            )
        if name not in names:
            names.append(name)
    return names


def discover_plugins() -> list[Plugin]:
    """Every entry point of the ``taskhub.plugins`` group, by distribution then name. Reads metadata
    only; whether an entry point is an app is decided from the files (a package with ``apps.py``)."""
    plugins = []
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else entry_point.module.partition(".")[0]
        version = entry_point.dist.version if entry_point.dist else "?"
        module, _, attribute = entry_point.value.partition(":")
        if not DOTTED_NAME.match(module.strip()) or (attribute and not DOTTED_NAME.match(attribute.strip())):
            raise PluginError(
                f"The task package {distribution} {version} declares the entry point {ENTRY_POINT_GROUP} "
                f"{entry_point.name!r} = {entry_point.value!r}, which names no module "
                "(expected 'package', 'package.module' or 'package.apps:AppConfig')."
            )
        plugins.append(
            Plugin(
                entry_point=entry_point.name,
                value=entry_point.value,
                distribution=distribution,
                version=version,
                is_app=bool(attribute) or _is_app_package(module.strip()),
            )
        )
    return sorted(plugins, key=lambda plugin: (plugin.distribution.lower(), plugin.entry_point))


def _is_app_package(module: str) -> bool:
    """A package with an ``apps.py`` (Django's convention for an app), found without importing it
    (a dotted name imports its parent packages, as any import would)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return False  # the import at start fails and names the package
    locations = getattr(spec, "submodule_search_locations", None) or []
    return any((Path(location) / "apps.py").is_file() for location in locations)


@functools.cache
def _distributions_by_top_level() -> dict[str, metadata.Distribution]:
    found: dict[str, metadata.Distribution] = {}
    for distribution in metadata.distributions():
        names = (distribution.read_text("top_level.txt") or "").split()
        names += [
            entry_point.module.partition(".")[0]
            for entry_point in distribution.entry_points
            if entry_point.group == ENTRY_POINT_GROUP
        ]
        for name in names:
            found.setdefault(name, distribution)
    return found


def package_of(module: str) -> tuple[str, str | None]:
    """(distribution name, version) of the installed package a module comes from; ("taskhub", None)
    for taskhub's own code; (the top-level module, None) for a module on the path of no distribution."""
    top_level = module.partition(".")[0]
    loaded = sys.modules.get(top_level)
    location = Path(getattr(loaded, "__file__", None) or "/").resolve()
    if location.parent.parent == PROJECT_DIR or location.parent == PROJECT_DIR:  # a package or module at the root
        return TASKHUB_PACKAGE, None
    distribution = _distributions_by_top_level().get(top_level)
    if distribution is not None:
        return distribution.name, distribution.version
    return top_level, None
