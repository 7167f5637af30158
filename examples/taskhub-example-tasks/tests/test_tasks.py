"""The example package's own tests, run inside taskhub's environment with the package's app installed:

    TASKHUB_APPS=taskhub_example_tasks .venv/bin/pytest examples/taskhub-example-tasks/tests

(taskhub's jobs/tests/tasks/test_example_plugin.py runs them after installing the package with pip.)
"""

import pytest
from taskhub_example_tasks.models import Tally
from taskhub_example_tasks.standard import record_tally
from taskhub_example_tasks.tasks import count_words, sum_numbers

from jobs.catalog import catalog
from taskhub.errors import InvalidInput


def test_both_tasks_are_in_the_catalog_as_this_package_s():
    for name in ("taskhub_example_tasks.count_words", "taskhub_example_tasks.sum_numbers"):
        entry = catalog.get(name)
        assert entry.package != "taskhub"
        assert entry.cancellable
    assert catalog.get("count_words").name == "taskhub_example_tasks.count_words"


@pytest.mark.parametrize(
    ("task", "kwargs", "field"),
    [
        ("taskhub_example_tasks.count_words", {}, "text"),
        ("taskhub_example_tasks.count_words", {"text": ""}, "text"),
        ("taskhub_example_tasks.count_words", {"text": "a", "lines": 2}, "lines"),
        ("taskhub_example_tasks.sum_numbers", {"numbers": []}, "numbers"),
        ("taskhub_example_tasks.sum_numbers", {"numbers": [1, "2"]}, "numbers"),
    ],
)
def test_the_declared_schema_refuses_bad_arguments(task, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        catalog.get(task).validate([], kwargs)
    assert f"'{field}'" in str(caught.value.fields), caught.value.fields


@pytest.mark.django_db
def test_count_words_counts_and_stores_the_count():
    assert count_words("one two three\n\nfour  five") == {"words": 5, "lines": 3}
    assert list(Tally.objects.values_list("kind", "value")) == [("words", 5)]


@pytest.mark.django_db
def test_sum_numbers_adds_up_and_stores_the_sum():
    assert sum_numbers(list(range(1, 102))) == {"sum": 5151}
    assert list(Tally.objects.values_list("kind", "value")) == [("sum", 5151)]


@pytest.mark.django_db
def test_the_standard_task_stores_a_tally():
    tally_id = record_tally.call("standard", 7)
    assert Tally.objects.get(id=tally_id).value == 7


@pytest.mark.django_db
def test_the_admin_lists_the_tallies(admin_client):
    Tally.objects.create(kind="words", value=12)
    response = admin_client.get("/admin/taskhub_example_tasks/tally/")
    assert response.status_code == 200
    assert "words = 12" in response.content.decode()
