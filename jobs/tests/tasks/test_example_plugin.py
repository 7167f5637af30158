"""Task packages installed with pip, end to end on real processes: examples/taskhub-example-tasks/
(a Django app with a model, two @job_task tasks, a django.tasks @task) and a second package written
only from the README's "Writing a task package" section.

Both are built and installed by pip (``pip install --no-deps --target``, from their pyproject.toml) into
a folder the child processes get on PYTHONPATH: the same as installing them into taskhub's
environment, without changing the environment other tests share.
"""

import json
import shutil
import subprocess
import sys
import time

import pytest
from django.db import connection
from rest_framework_simplejwt.tokens import AccessToken

from accounts.tests.factories import UserFactory
from jobs.models import Job, JobStatus
from taskhub.testing import BeatProcess, WorkerProcess
from taskhub.testing.plugins import (
    EXAMPLE_PACKAGE,
    manage,
    pip_install,
    plugin_env,
    readme_package_files,
    write_files,
)
from taskhub.testing.processes import BASE_DIR, child_database_url, wait_for
from taskhub.testing.web import AsgiServer, procfile_web_options
from taskhub.testing.workers import wait_status

pytestmark = [pytest.mark.worker, pytest.mark.timeout(300)]

README_SECTION = "### Writing a task package"
EXAMPLE_TASKS = ("taskhub_example_tasks.count_words", "taskhub_example_tasks.sum_numbers")
# The example through the settings (its entry point off); the README's package through its entry point.
EXAMPLE_SETTINGS = {"TASKHUB_APPS": "taskhub_example_tasks", "TASKHUB_PLUGIN_DISCOVERY": "false"}
END_TO_END_BOUND = 60  # seconds, from the migration to the schedule's job (pip's install not counted)


@pytest.fixture(scope="session")
def site(tmp_path_factory):
    """The example package and the README's, installed by one pip run."""
    root = tmp_path_factory.mktemp("task-packages")
    readme = (BASE_DIR / "README.md").read_text()
    files = readme_package_files(readme, README_SECTION)
    assert {"pyproject.toml", "acme_reports/__init__.py", "acme_reports/tasks.py"} <= set(files), files
    seconds = pip_install(EXAMPLE_PACKAGE, write_files(root / "acme-reports", files), target=root / "site")
    print(f"pip installed the two task packages in {seconds:.1f}s")
    return root / "site"


def tally(job_id) -> list[tuple[str, int]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT kind, value FROM taskhub_example_tasks_tally WHERE job_id = %s", [str(job_id)])
        return cursor.fetchall()


@pytest.fixture
def example_env(site, broker_url, transactional_db):
    """The example's environment for child processes, its migration applied to the test database
    (``manage.py migrate``), unapplied after the test (which drops its table)."""
    env = plugin_env(site, DATABASE_URL=child_database_url(), CELERY_BROKER_URL=broker_url, **EXAMPLE_SETTINGS)
    migrated = manage("migrate", "--noinput", env=env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert "Applying taskhub_example_tasks.0001_initial... OK" in migrated.stdout or tally_table_exists()
    yield env
    unmigrated = manage("migrate", "taskhub_example_tasks", "zero", "--noinput", env=env)
    assert unmigrated.returncode == 0, unmigrated.stderr[-3000:]
    assert not tally_table_exists()


def tally_table_exists() -> bool:
    return "taskhub_example_tasks_tally" in connection.introspection.table_names()


def test_the_example_package_runs_end_to_end_on_real_processes(site, example_env, make_worker, broker_url):
    started = time.monotonic()
    settings = {"PYTHONPATH": example_env["PYTHONPATH"], **EXAMPLE_SETTINGS}
    worker = make_worker(env=settings)
    loaded = "Task packages loaded: taskhub-example-tasks 0.1.0 (taskhub_example_tasks.tasks: " + ", ".join(
        EXAMPLE_TASKS
    )
    assert loaded in worker.output()
    server = AsgiServer(env={"DATABASE_URL": child_database_url(), "CELERY_BROKER_URL": broker_url, **settings})
    server.start()
    beat = None
    try:
        user = UserFactory(is_staff=True)  # a schedule every 2 s: users who are not staff wait 60 s at least
        token = str(AccessToken.for_user(user))
        # A job of each task, each of another user: one user's second job would wait for their fair share.
        owners = {name: str(AccessToken.for_user(UserFactory())) for name in EXAMPLE_TASKS}

        # The catalog lists both tasks as the package's.
        status, entries = server.request("GET", "/api/v1/task-catalog/", token=token)
        assert status == 200
        listed = {entry["name"]: entry for entry in entries}
        for name in EXAMPLE_TASKS:
            assert (listed[name]["package"], listed[name]["package_version"]) == ("taskhub-example-tasks", "0.1.0")
        assert listed["taskhub_example_tasks.count_words"]["parameters"]["required"] == ["text"]

        # The declared schema is enforced over the API: a 400 naming the argument, nothing written.
        for kwargs, field in [({"text": 5}, "'text'"), ({}, "'text'"), ({"text": "a", "extra": 1}, "'extra'")]:
            status, body = server.request(
                "POST", "/api/v1/jobs/", token=token, body={"celery_task_name": "count_words", "kwargs": kwargs}
            )
            assert status == 400, body
            assert body["code"] == "invalid_arguments" and field in json.dumps(body["fields"]), body
        status, body = server.request(
            "POST", "/api/v1/jobs/", token=token, body={"celery_task_name": EXAMPLE_TASKS[1], "kwargs": {"numbers": []}}
        )
        assert status == 400 and "numbers" in json.dumps(body["fields"]), body
        assert not Job.objects.exists()

        # A job of each task runs on the worker and writes the app's model.
        jobs = {}
        arguments = [
            (EXAMPLE_TASKS[0], {"text": "one two three\nfour five"}),
            (EXAMPLE_TASKS[1], {"numbers": [*range(1, 101)]}),
        ]
        for name, kwargs in arguments:
            status, body = server.request(
                "POST", "/api/v1/jobs/", token=owners[name], body={"celery_task_name": name, "kwargs": kwargs}
            )
            assert status == 201, body
            jobs[name] = body["id"]
        words, total = (wait_status(jobs[name], timeout=30) for name in EXAMPLE_TASKS)
        assert (words.status, words.result, words.progress) == (JobStatus.SUCCEEDED, {"words": 5, "lines": 2}, 100)
        assert (total.status, total.result, total.progress) == (JobStatus.SUCCEEDED, {"sum": 5050}, 100)
        assert tally(words.id) == [("words", 5)] and tally(total.id) == [("sum", 5050)]

        # The package's django.tasks @task, enqueued in a process of its own, runs as a tracked job.
        enqueued = manage(
            "shell",
            "-c",
            "from taskhub_example_tasks.standard import record_tally; print(record_tally.enqueue('standard', 42).id)",
            env=example_env,
        )
        assert enqueued.returncode == 0, enqueued.stderr[-3000:]
        standard = wait_status(enqueued.stdout.strip().splitlines()[-1], timeout=30)
        assert standard.status == JobStatus.SUCCEEDED, (standard.error, standard.traceback)
        assert standard.celery_task_name == "jobs.tasks.standard_tasks.run_standard_task"
        with connection.cursor() as cursor:
            cursor.execute("SELECT value FROM taskhub_example_tasks_tally WHERE kind = 'standard'")
            assert cursor.fetchall() == [(42,)]

        # A schedule of a package's task fires on beat and runs on the worker.
        every = {"every": 2, "period": "seconds"}
        schedule = {"name": "word count", "task": "count_words", "kwargs": {"text": "a b c"}, "interval": every}
        status, body = server.request("POST", "/api/v1/schedules/", token=token, body=schedule)
        assert status == 201, body
        beat = BeatProcess(broker_url=broker_url, env=settings).start()
        fired = wait_for(
            lambda: Job.objects.filter(schedule_id=body["id"], status=JobStatus.SUCCEEDED).first(),
            timeout=30,
            message="a succeeded job of the schedule",
        )
        assert fired.celery_task_name == EXAMPLE_TASKS[0] and tally(fired.id) == [("words", 3)]
    finally:
        if beat is not None:
            beat.stop()
        server.stop()
    elapsed = time.monotonic() - started
    print(f"the example package end to end: {elapsed:.1f}s")
    assert elapsed < END_TO_END_BOUND


def test_the_example_package_s_own_tests_pass(site, broker_url):
    """Its tests, with taskhub's test settings and a test database of their own (its tables made from
    the models: a migration of the whole project would take a minute)."""
    env = plugin_env(
        site,
        TASKHUB_APPS="taskhub_example_tasks",
        DATABASE_URL=child_database_url() + "_example",  # the test database: test_<that>
        CELERY_BROKER_URL=broker_url,
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:randomly",
            "--create-db",
            "--no-migrations",
            str(EXAMPLE_PACKAGE / "tests"),
        ],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert "10 passed" in result.stdout, result.stdout[-2000:]


def test_a_package_written_only_from_the_readme_runs(site, make_worker, broker_url, transactional_db):
    env = plugin_env(site, DATABASE_URL=child_database_url(), CELERY_BROKER_URL=broker_url)  # no setting at all
    shown = manage("tasks", "render_report", env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert shown.stdout.startswith("acme_reports.render\n") and "  package      acme-reports 1.0.0\n" in shown.stdout
    assert "acme-reports 1.0.0 (acme_reports.tasks: acme_reports.render)" in shown.stderr  # in the start-up log

    make_worker(env={"PYTHONPATH": env["PYTHONPATH"]})
    UserFactory(username="reporter")
    kwargs = json.dumps({"title": "Q3", "pages": 5})
    ran = manage("enqueue_job", "render_report", "--kwargs", kwargs, "--user", "reporter", "--wait", "--json", env=env)
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    job = json.loads(ran.stdout)
    assert (job["status"], job["result"], job["progress"]) == ("succeeded", {"title": "Q3", "pages": 5}, 100)

    refused = manage("enqueue_job", "render_report", "--kwargs", '{"pages": 501}', "--user", "reporter", env=env)
    assert refused.returncode != 0, refused.stdout
    assert "CommandError: --kwargs: kwargs.pages: parameter 'pages' must be at most 500, got 501" in refused.stderr


@pytest.mark.parametrize("process", ["web", "worker", "beat", "manage.py migrate"])
def test_a_package_whose_import_is_broken_stops_each_process_naming_it(site, tmp_path, broker_url, process, db):
    broken = shutil.copytree(site, tmp_path / "site")
    tasks = broken / "taskhub_example_tasks" / "tasks.py"
    tasks.write_text("import taskhub_example_missing_dependency\n" + tasks.read_text())
    env = plugin_env(broken, DATABASE_URL=child_database_url(), CELERY_BROKER_URL=broker_url)  # its entry point
    commands = {
        "web": [sys.executable, "-m", "uvicorn", "taskhub.asgi:application", "--port", "0", *procfile_web_options()],
        "worker": WorkerProcess(broker_url=broker_url).args,
        "beat": BeatProcess(broker_url=broker_url).args,
        "manage.py migrate": [sys.executable, "manage.py", "migrate", "--noinput"],
    }
    result = subprocess.run(
        commands[process], cwd=BASE_DIR, env=env, capture_output=True, text=True, check=False, timeout=60
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert (
        "The task package taskhub-example-tasks 0.1.0 cannot be loaded: entry point taskhub.plugins 'example' = "
        "'taskhub_example_tasks' names the module 'taskhub_example_tasks.tasks', whose import failed with "
        "ModuleNotFoundError: No module named 'taskhub_example_missing_dependency'"
    ) in output, output[-3000:]
    assert not tally_table_exists()
