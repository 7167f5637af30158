"""manage.py tasks [NAME] [--json]: the catalog as GET /api/v1/task-catalog/ shows it (CatalogEntry.describe())."""

import io
import json
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import call_command, load_command_class
from django.core.management.base import CommandError

from jobs.catalog import catalog
from jobs.serializers import CatalogEntrySerializer


def tasks(*args: str) -> str:
    out = io.StringIO()
    call_command("tasks", *args, stdout=out)
    return out.getvalue()


def test_json_is_the_task_catalog_endpoints_body():
    expected = CatalogEntrySerializer([entry.describe() for entry in catalog.entries()], many=True).data
    assert json.loads(tasks("--json")) == json.loads(json.dumps(expected))


def test_one_task_by_alias_as_json():
    document = json.loads(tasks("long_running_task", "--json"))
    assert document == json.loads(json.dumps(CatalogEntrySerializer(catalog.get("long_running_task").describe()).data))


def test_text_shows_parameters_with_types_defaults_and_limits_and_the_policies():
    text = tasks("long_running_task")
    assert text.startswith("jobs.tasks.common_tasks.long_running_task\n")
    assert "  aliases      app.tasks.common_tasks.long_running_task, long_running_task" in text
    assert "  priority     normal (queue default)" in text
    assert "  time limits  soft -, hard 14400s" in text
    assert "  retries      none" in text
    assert "  cancellable  yes" in text
    assert "  package      taskhub\n" in text  # a task package's: its distribution and version
    assert "  description  Work for `seconds` seconds, reporting progress every second. Extra keyword" in text
    assert "  parameters\n    seconds  integer, 0 to 14400, default 10\n" in text
    assert "    (other keyword arguments: string)" in text


def test_text_shows_required_parameters_and_the_retry_policy():
    text = tasks("send_notification")
    assert "  priority     urgent (queue high_priority)" in text
    assert "  time limits  soft 60s, hard 120s" in text
    assert "  retries      at most 5 (backoff 5s, at most 600s apart)" in text
    assert "    to       array of string, required, at most 100 items" in text
    assert "    subject  string, required, at most 200 characters" in text


def test_the_listing_names_every_task():
    text = tasks()
    for entry in catalog.entries():
        assert entry.name in text


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("long_runing_task", "NAME: unknown task 'long_runing_task'. Did you mean 'long_running_task'?"),
        ("send_notifcation", "NAME: unknown task 'send_notifcation'. Did you mean 'send_notification'?"),
        ("qqqq", "NAME: unknown task 'qqqq'. `manage.py tasks` lists them."),
    ],
)
def test_an_unknown_task_exits_2_with_a_suggestion(name, message):
    with pytest.raises(CommandError) as caught:
        tasks(name)
    assert caught.value.returncode == 2 and str(caught.value) == message


def test_help_has_examples():
    text = load_command_class("jobs", "tasks").create_parser("manage.py", "tasks").format_help()
    assert "Examples:\n  manage.py tasks\n  manage.py tasks long_running_task --json" in text


def test_as_a_real_process():
    command = [sys.executable, "manage.py", "tasks"]
    good = subprocess.run([*command, "train_model"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
    assert good.returncode == 0 and good.stdout.startswith("jobs.tasks.model_tasks.train_model\n"), good.stderr
    bad = subprocess.run([*command, "trian_model"], cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "Did you mean 'train_model'?" in bad.stderr
