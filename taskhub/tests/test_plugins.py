"""Task packages: TASKHUB_APPS, TASKHUB_TASK_MODULES and the ``taskhub.plugins`` entry points, each
seen by a real ``manage.py`` process; a broken package stops the process naming itself and the problem.

The packages here are written by hand (files and a .dist-info folder, as pip leaves them) to keep
these tests fast; jobs/tests/tasks/test_example_plugin.py installs real ones with pip and runs them
on real workers.
"""

import json

import pytest

from jobs.catalog import CatalogEntry, catalog
from taskhub.plugins import package_of
from taskhub.testing.plugins import fake_distribution, manage, plugin_env, write_files

TASK_MODULE = '''
from jobs.tasks.registry import job_task


@job_task(name="{name}")
def {function}(self, count: int = 1) -> int:
    """A team's task."""
    self.progress(50)
    return count
'''

APP_FILES = {
    "team_app/__init__.py": "",
    "team_app/apps.py": (
        "from django.apps import AppConfig\n\n\nclass TeamAppConfig(AppConfig):\n"
        "    name = 'team_app'\n    default_auto_field = 'django.db.models.BigAutoField'\n"
    ),
    "team_app/models.py": (
        "from django.db import models\n\n\nclass Note(models.Model):\n    text = models.TextField()\n"
    ),
    "team_app/tasks.py": TASK_MODULE.format(name="team_app.note", function="note"),
}


def catalog_of(result) -> dict[str, dict]:
    assert result.returncode == 0, result.stderr[-3000:]
    return {entry["name"]: entry for entry in json.loads(result.stdout)}


def test_task_modules_setting_imports_its_modules_at_start(tmp_path):
    write_files(tmp_path, {"team_tasks.py": TASK_MODULE.format(name="team_tasks.count", function="count")})

    listed = catalog_of(manage("tasks", "--json", env=plugin_env(tmp_path, TASKHUB_TASK_MODULES="team_tasks")))
    assert listed["team_tasks.count"]["package"] == "team_tasks"  # a module of no distribution
    assert listed["team_tasks.count"]["package_version"] is None
    assert listed["jobs.tasks.common_tasks.blocking_sleep"]["package"] == "taskhub"

    assert "team_tasks.count" not in catalog_of(manage("tasks", "--json", env=plugin_env(tmp_path)))


def test_taskhub_apps_installs_the_apps_and_imports_their_tasks_module(tmp_path):
    write_files(tmp_path, APP_FILES)
    env = plugin_env(tmp_path, TASKHUB_APPS="team_app")

    listed = catalog_of(manage("tasks", "--json", env=env))
    assert "team_app.note" in listed
    shown = manage("shell", "-c", "from django.apps import apps; print(apps.get_model('team_app', 'Note'))", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "team_app.models.Note" in shown.stdout


def test_an_entry_point_is_found_without_any_setting_and_logged(tmp_path):
    fake_distribution(
        tmp_path,
        name="team-tasks",
        version="2.1.0",
        files={"team_tasks/__init__.py": "", "team_tasks/jobs.py": TASK_MODULE.format(name="team.count", function="c")},
        entry_points={"team": "team_tasks.jobs"},
    )
    result = manage("tasks", "--json", env=plugin_env(tmp_path))
    listed = catalog_of(result)
    assert (listed["team.count"]["package"], listed["team.count"]["package_version"]) == ("team-tasks", "2.1.0")
    assert "Task packages loaded: team-tasks 2.1.0 (team_tasks.jobs: team.count)" in result.stderr

    off = manage("tasks", "--json", env=plugin_env(tmp_path, TASKHUB_PLUGIN_DISCOVERY="false"))
    assert "team.count" not in catalog_of(off)
    assert "Task packages loaded" not in off.stderr


def test_an_entry_point_naming_an_app_installs_it(tmp_path):
    fake_distribution(tmp_path, name="team-app", version="1.0", files=APP_FILES, entry_points={"app": "team_app"})
    env = plugin_env(tmp_path, TASKHUB_APPS="team_app")  # named twice: installed once

    listed = catalog_of(manage("tasks", "--json", env=env))
    assert (listed["team_app.note"]["package"], listed["team_app.note"]["package_version"]) == ("team-app", "1.0")
    shown = manage("shell", "-c", "from django.conf import settings; print(settings.INSTALLED_APPS[-2:])", env=env)
    assert "'jobs', 'team_app']" in shown.stdout, shown.stderr


BROKEN = {
    "an import error": (
        "import team_tasks_missing_dependency\n",
        "ModuleNotFoundError: No module named 'team_tasks_missing_dependency'",
    ),
    "a name taskhub has": (
        TASK_MODULE.format(name="jobs.tasks.common_tasks.blocking_sleep", function="sleep"),
        "Task name 'jobs.tasks.common_tasks.blocking_sleep' of team_tasks.jobs (team-tasks 2.1.0) is registered twice: "
        "jobs.tasks.common_tasks (taskhub) has it already.",
    ),
    "an alias taskhub has": (
        "from jobs.tasks.registry import job_task\n\n\n@job_task(name='team.x', aliases=('long_running_task',))\n"
        "def x(self):\n    self.progress(1)\n",
        "Task name 'long_running_task' of team_tasks.jobs (team-tasks 2.1.0) is registered twice",
    ),
    "a name of taskhub's Celery tasks": (
        TASK_MODULE.format(name="jobs.tasks.maintenance_tasks.dispatch_jobs", function="dispatch"),
        "ValueError: Task name 'jobs.tasks.maintenance_tasks.dispatch_jobs' is a Celery task of taskhub's already",
    ),
    "a bad declared schema": (
        "from jobs.tasks.registry import job_task\n\n\n@job_task(name='team.x', schema={'type': 'no-such-type'})\n"
        "def x(self):\n    self.progress(1)\n",
        "ValueError: Task team.x: the declared schema is not a valid JSON Schema",
    ),
}


@pytest.mark.parametrize("problem", BROKEN)
def test_a_broken_package_stops_start_up_naming_the_package_and_the_problem(tmp_path, problem):
    source, message = BROKEN[problem]
    fake_distribution(
        tmp_path,
        name="team-tasks",
        version="2.1.0",
        files={"team_tasks/__init__.py": "", "team_tasks/jobs.py": source},
        entry_points={"team": "team_tasks.jobs"},
    )
    result = manage("check", env=plugin_env(tmp_path))
    assert result.returncode != 0
    assert (
        "The task package team-tasks 2.1.0 cannot be loaded: entry point taskhub.plugins 'team' = "
        "'team_tasks.jobs' names the module 'team_tasks.jobs', whose import failed with"
    ) in result.stderr, result.stderr[-3000:]
    assert message in result.stderr, result.stderr[-3000:]
    assert "TASKHUB_PLUGIN_DISCOVERY=false" in result.stderr

    assert manage("check", env=plugin_env(tmp_path, TASKHUB_PLUGIN_DISCOVERY="false")).returncode == 0


def test_two_packages_with_one_task_name_stop_start_up(tmp_path):
    for name in ("first", "second"):
        fake_distribution(
            tmp_path,
            name=f"team-{name}",
            version="1.0",
            files={f"team_{name}.py": TASK_MODULE.format(name="team.shared", function=name)},
            entry_points={name: f"team_{name}"},
        )
    result = manage("check", env=plugin_env(tmp_path))
    assert result.returncode != 0
    assert "The task package team-second 1.0 cannot be loaded" in result.stderr, result.stderr[-3000:]
    assert (
        "Task name 'team.shared' of team_second (team-second 1.0) is registered twice: team_first (team-first 1.0)"
        in (result.stderr)
    )


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("TASKHUB_APPS", "team app", "TASKHUB_APPS names 'team app', which is not a dotted Python module name"),
        ("TASKHUB_TASK_MODULES", "team-tasks", "TASKHUB_TASK_MODULES names 'team-tasks', which is not a dotted"),
        (
            "TASKHUB_TASK_MODULES",
            "team_tasks_nowhere",
            "The task package team_tasks_nowhere cannot be loaded: TASKHUB_TASK_MODULES 'team_tasks_nowhere' names the "
            "module 'team_tasks_nowhere', whose import failed with ModuleNotFoundError",
        ),
        ("TASKHUB_APPS", "team_app_nowhere", "No module named 'team_app_nowhere'"),
    ],
)
def test_settings_naming_what_cannot_load_stop_start_up(tmp_path, setting, value, message):
    result = manage("check", env=plugin_env(tmp_path, **{setting: value}))
    assert result.returncode != 0
    assert message in result.stderr, result.stderr[-3000:]


def test_an_entry_point_that_names_no_module_stops_start_up(tmp_path):
    fake_distribution(
        tmp_path, name="team-odd", version="0.3", files={"team_odd.py": ""}, entry_points={"odd": "team odd!"}
    )
    result = manage("check", env=plugin_env(tmp_path))
    assert result.returncode != 0
    assert (
        "The task package team-odd 0.3 declares the entry point taskhub.plugins 'odd' = 'team odd!', which names "
        in (result.stderr)
    ), result.stderr[-3000:]


def test_the_catalog_names_each_tasks_package(user_client):
    entries = {entry["name"]: entry for entry in user_client.get("/api/v1/task-catalog/").json()}
    assert entries["jobs.tasks.common_tasks.long_running_task"]["package"] == "taskhub"
    assert entries["jobs.tasks.common_tasks.long_running_task"]["package_version"] is None

    schema = user_client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]["CatalogEntry"]
    assert {"package", "package_version"} <= set(schema["required"])
    assert schema["properties"]["package_version"]["nullable"] is True
    assert "distribution name" in schema["properties"]["package"]["description"]


def test_package_of_a_module_is_its_installed_distribution():
    import celery

    assert package_of("celery.app.task") == ("celery", celery.__version__)
    assert package_of("jobs.tasks.common_tasks") == ("taskhub", None)


def test_a_second_task_of_a_name_is_refused_and_nothing_of_it_is_added():
    existing = catalog.get("long_running_task")

    def copy(self) -> None:
        """A second task of the same name."""

    for name, aliases in [(existing.name, ()), ("jobs.tests.other", ("long_running_task",))]:
        entry = CatalogEntry.from_function(copy, name=name, aliases=aliases)
        with pytest.raises(ValueError, match=r"is registered twice: jobs\.tasks\.common_tasks \(taskhub\) has it"):
            catalog.add(entry)
        assert catalog.get(existing.name) is existing
    assert "jobs.tests.other" not in catalog
