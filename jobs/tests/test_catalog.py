"""The task catalog: the only tasks a job may run, and the shape of their arguments."""

import pytest

from jobs.catalog import catalog
from taskhub.errors import InvalidInput

LONG = "jobs.tasks.common_tasks.long_running_task"
NOTIFY = "jobs.tasks.high_priority_tasks.send_notification"
TRAIN = "jobs.tasks.model_tasks.train_model"
SLEEP = "jobs.tasks.common_tasks.blocking_sleep"
PROCESS = "jobs.tasks.common_tasks.process_data"


def invalid(task: str, args: list | None = None, kwargs: dict | None = None) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        catalog.get(task).validate([] if args is None else args, {} if kwargs is None else kwargs)
    return caught.value


def test_builtin_tasks_are_registered():
    names = {entry.name for entry in catalog.entries()}
    assert {
        LONG,
        PROCESS,
        NOTIFY,
        TRAIN,
        SLEEP,
        "jobs.tasks.common_tasks.flaky_task",
    } <= names
    # Housekeeping is scheduled by beat, never run as a user's job.
    assert "jobs.tasks.maintenance_tasks.sweep_jobs" not in names


@pytest.mark.parametrize(
    ("alias", "canonical"),
    [
        ("app.tasks.common_tasks.long_running_task", LONG),
        ("long_running_task", LONG),
        (LONG, LONG),
        ("app.tasks.model_tasks.train_model", TRAIN),
        ("app.tasks.high_priority_tasks.send_notification", NOTIFY),
        ("data_processing", PROCESS),
    ],
)
def test_aliases_resolve_to_the_registered_task(alias, canonical):
    assert catalog.get(alias).name == canonical
    assert alias in catalog


@pytest.mark.parametrize("name", ["os.system", "jobs.tasks.maintenance_tasks.sweep_jobs", "", None, 42])
def test_unknown_task_is_refused_with_the_allowed_names(name):
    with pytest.raises(InvalidInput) as caught:
        catalog.get(name)
    error = caught.value
    assert error.code == "unknown_task"
    assert "celery_task_name" in error.fields
    assert "Allowed tasks:" in error.message
    for entry in catalog.entries():
        assert entry.name in error.message


def test_the_spec_example_arguments_fit():
    # args [60] binds `seconds`; unknown keywords are string labels (**labels: str).
    catalog.get("app.tasks.common_tasks.long_running_task").validate([60], {"param": "value"})


@pytest.mark.parametrize(
    ("args", "kwargs", "where", "words"),
    [
        (["60"], {}, "args", ["args[0]", "'seconds'", "must be an integer", "str"]),
        ([1.5], {}, "args", ["args[0]", "'seconds'", "must be an integer"]),
        ([True], {}, "args", ["'seconds'", "must be an integer", "bool"]),
        ([None], {}, "args", ["'seconds'", "not null"]),
        (
            [],
            {"seconds": "ten"},
            "kwargs",
            ["kwargs.seconds", "'seconds'", "must be an integer"],
        ),
        ([-1], {}, "args", ["'seconds'", "at least 0", "got -1"]),
        (
            [],
            {"seconds": 4 * 3600 + 1},
            "kwargs",
            ["'seconds'", "at most 14400", "got 14401"],
        ),
        ([1, 2], {}, "args", ["at most 1 positional", "(seconds)", "got 2"]),
        (
            [],
            {"param": 5},
            "kwargs",
            ["kwargs.param", "'param'", "must be a string", "int"],
        ),
        ([], {"tags": ["a"]}, "kwargs", ["'tags'", "must be a string", "list"]),
        ([5], {"seconds": 5}, "kwargs", ["'seconds'", "also given in args"]),
        (
            [],
            {"not valid": "x"},
            "kwargs",
            ["'not valid'", "not a valid parameter name"],
        ),
    ],
)
def test_long_running_task_arguments_name_the_parameter(args, kwargs, where, words):
    error = invalid(LONG, args, kwargs)
    assert error.code == "invalid_arguments"
    assert list(error.fields) == [where]
    for word in words:
        assert word in error.message
        assert word in error.fields[where][0]


def test_unknown_keyword_lists_the_allowed_parameters():
    error = invalid(
        NOTIFY,
        kwargs={"to": ["a@example.com"], "subject": "hi", "cc": ["b@example.com"]},
    )
    assert "unknown parameter 'cc'" in error.message
    assert "(parameters: to, subject, body)" in error.message
    assert list(error.fields) == ["kwargs"]


def test_missing_required_parameter_is_named():
    assert "missing required parameter 'to'" in invalid(NOTIFY, kwargs={"subject": "hi"}).message
    assert "missing required parameter 'subject'" in invalid(NOTIFY, args=[["a@example.com"]]).message
    assert "missing required parameter 'features'" in invalid(TRAIN).message


@pytest.mark.parametrize(
    ("task", "args", "kwargs", "words"),
    [
        (
            NOTIFY,
            [],
            {"to": "a@example.com", "subject": "s"},
            ["'to'", "must be an array", "str"],
        ),
        (
            NOTIFY,
            [],
            {"to": ["a@example.com", 7], "subject": "s"},
            ["'to'", "item 1 must be a string", "int"],
        ),
        (
            NOTIFY,
            [],
            {"to": ["a@example.com"] * 101, "subject": "s"},
            ["'to'", "at most 100", "got 101"],
        ),
        (
            NOTIFY,
            [],
            {"to": ["a@example.com"], "subject": "s" * 201},
            ["'subject'", "at most 200", "got 201"],
        ),
        (TRAIN, [[[1.0]], [1.0]], {"epochs": 0}, ["'epochs'", "at least 1", "got 0"]),
        (
            TRAIN,
            [[[1.0]], [1.0]],
            {"learning_rate": 11},
            ["'learning_rate'", "at most 10"],
        ),
        (
            TRAIN,
            [[1.0], [1.0]],
            {},
            ["args[0]", "'features'", "item 0 must be an array", "float"],
        ),
        (SLEEP, [-0.5], {}, ["'seconds'", "at least 0"]),
        (
            PROCESS,
            [],
            {"records": [{}], "fields": ["a", 1]},
            ["'fields'", "item 1 must be a string"],
        ),
    ],
)
def test_types_ranges_and_lengths_are_checked(task, args, kwargs, words):
    error = invalid(task, args, kwargs)
    for word in words:
        assert word in error.message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(value):
    """JSON has no NaN or Infinity: such a value could not be stored or sent (PostgreSQL's
    jsonb refuses it), so it is refused here, naming the parameter."""
    error = invalid(SLEEP, args=[value])
    assert "'seconds'" in error.message
    assert "args" in error.fields


def test_optional_and_nullable_parameters_may_be_left_out_or_null():
    catalog.get(LONG).validate([], {})
    catalog.get(PROCESS).validate([], {"records": [{"a": 1}], "csv_text": None, "group_by": None})
    catalog.get(NOTIFY).validate([["a@example.com"], "subject"], {"body": ""})
    catalog.get(TRAIN).validate(
        [[[1, 2], [3, 4]], [0, 1]],
        {"kind": "logistic", "epochs": 5, "learning_rate": 1},
    )


@pytest.mark.parametrize(
    ("args", "kwargs", "field"),
    [({}, {}, "args"), ([], [], "kwargs"), ("[1]", {}, "args")],
)
def test_args_must_be_a_list_and_kwargs_an_object(args, kwargs, field):
    with pytest.raises(InvalidInput) as caught:
        catalog.get(LONG).validate(args, kwargs)
    assert list(caught.value.fields) == [field]


def test_describe_exposes_the_parameters_as_json_schema():
    described = catalog.get("long_running_task").describe()
    assert described["name"] == LONG
    assert "app.tasks.common_tasks.long_running_task" in described["aliases"]
    assert described["default_priority"] == "normal"
    assert described["queue"] == "default"
    assert described["cancellable"] is True
    assert described["staff_only"] is False
    assert described["time_limit"] == 4 * 3600
    assert described["description"].startswith("Work for `seconds` seconds")
    assert described["parameters"] == {
        "type": "object",
        "properties": {
            "seconds": {
                "type": "integer",
                "minimum": 0,
                "maximum": 4 * 3600,
                "default": 10,
            }
        },
        "required": [],
        "additionalProperties": {"type": "string"},
        "x-positional-order": ["seconds"],
    }


def test_describe_shows_required_nullable_and_item_types():
    notify = catalog.get(NOTIFY).describe()
    assert notify["default_priority"] == "urgent"
    assert notify["queue"] == "high_priority"
    assert notify["max_retries"] == 5
    assert notify["parameters"]["required"] == ["to", "subject"]
    assert notify["parameters"]["additionalProperties"] is False
    assert notify["parameters"]["properties"]["to"] == {
        "type": "array",
        "items": {"type": "string"},
        "maxItems": 100,
    }
    assert notify["parameters"]["properties"]["subject"] == {
        "type": "string",
        "maxLength": 200,
    }

    process = catalog.get(PROCESS).describe()["parameters"]["properties"]
    assert process["csv_text"] == {"type": ["string", "null"], "default": None}
    assert process["fields"] == {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "default": None,
    }

    sleep = catalog.get(SLEEP).describe()
    assert sleep["cancellable"] is False
    assert sleep["parameters"]["properties"]["seconds"]["type"] == "number"
