"""Task packages (plugins): a team's own tasks and Django apps, installed with pip, without an edit of
taskhub (taskhub/plugins.py; README "Writing a task package").

- TASKHUB_APPS: Django apps appended to INSTALLED_APPS (their models, migrations, admin and ``@task``
  functions work; each one's ``tasks`` module is imported at start).
- TASKHUB_TASK_MODULES: modules imported at start by web, workers and beat, where ``@job_task``
  functions register in the catalog (as Celery's ``imports``,
  https://docs.celeryq.dev/en/stable/userguide/configuration.html#imports).
- TASKHUB_PLUGIN_DISCOVERY: find the distributions that declare the entry point group
  ``taskhub.plugins`` (https://packaging.python.org/en/latest/specifications/entry-points/) without
  any setting; false loads only what the two settings above name.
"""

from taskhub.plugins import discover_plugins, dotted_names
from taskhub.settings.environment import env

TASKHUB_APPS = dotted_names("TASKHUB_APPS", env.list("TASKHUB_APPS", default=[]))
TASKHUB_TASK_MODULES = dotted_names("TASKHUB_TASK_MODULES", env.list("TASKHUB_TASK_MODULES", default=[]))
TASKHUB_PLUGIN_DISCOVERY = env.bool("TASKHUB_PLUGIN_DISCOVERY", default=True)
# The entry points found (taskhub.plugins.Plugin), and every app the settings and they add.
TASKHUB_PLUGINS = discover_plugins() if TASKHUB_PLUGIN_DISCOVERY else []
TASKHUB_PLUGIN_APPS = list(dict.fromkeys([*TASKHUB_APPS, *(plugin.app for plugin in TASKHUB_PLUGINS if plugin.is_app)]))
