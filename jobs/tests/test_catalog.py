"""The task catalog: the only tasks a job may run, and the shape of their arguments."""

from typing import Annotated

import pytest

from jobs.catalog import catalog
from jobs.parameters import Between
from jobs.tasks.registry import job_task
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


@pytest.fixture
def register():
    """``register(function, **job_task_options)``: a task named ``jobs.tests.<function>`` for
    this test only (then removed from the catalog and Celery); returns its catalog entry."""
    from taskhub.celery import app

    names = []

    def register(function, **options):
        name = f"jobs.tests.{function.__name__}"
        names.append(name)
        job_task(name=name, **options)(function)
        return catalog.get(name)

    yield register
    for name in names:
        if name in catalog:
            catalog.remove(name)
        if name in app.tasks:
            app.tasks.unregister(name)


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
    assert "jobs.tasks.maintenance_tasks.dispatch_jobs" not in names


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


@pytest.mark.parametrize("name", ["os.system", "jobs.tasks.maintenance_tasks.dispatch_jobs", "", None, 42])
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


@pytest.mark.parametrize("task", [SLEEP, LONG])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numbers_must_be_finite(task, value):
    """JSON has no NaN or Infinity: such a value could not be stored or sent (PostgreSQL's
    jsonb refuses it), so it is refused here, naming the parameter."""
    error = invalid(task, args=[value])
    assert error.message.startswith("args[0]: parameter 'seconds' must be a")
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


def test_a_too_large_integer_names_the_argument_and_the_limit():
    assert invalid(LONG, kwargs={"seconds": 14401}).fields == {
        "kwargs": ["kwargs.seconds: parameter 'seconds' must be at most 14400, got 14401"]
    }
    assert invalid(LONG, args=[10**30]).message.startswith("args[0]: parameter 'seconds' must be at most 14400")


def test_a_kwarg_named_like_the_task_itself_is_refused(register):
    """The task base calls ``self.run(*args, **kwargs)``: such a kwarg would break the call in
    the worker, though ``**labels`` accepts any name."""

    def labelled(task, **labels: str) -> None:
        pass

    labelled_name = register(labelled).name
    for task, kwarg in [(LONG, "self"), (labelled_name, "self"), (labelled_name, "task")]:
        error = invalid(task, kwargs={kwarg: "x"})
        assert error.code == "invalid_arguments"
        assert error.fields == {"kwargs": [error.message]}
        assert error.message.startswith(f"kwargs.{kwarg}: '{kwarg}' is a reserved name")


DECLARED = {
    "type": "object",
    "properties": {
        "count": {"type": "integer", "maximum": 5},
        "mode": {"enum": ["fast", "slow"], "default": "fast"},
    },
    "required": ["count"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ([], {"count": 6}, "kwargs.count: parameter 'count' must be at most 5, got 6"),
        ([6], {}, "args[0]: parameter 'count' must be at most 5, got 6"),
        ([], {"count": "6"}, "kwargs.count: parameter 'count' must be an integer, got str '6'"),
        (
            [],
            {"count": 1, "mode": "medium"},
            "kwargs.mode: parameter 'mode' must be one of 'fast', 'slow', got str 'medium'",
        ),
        ([], {"mode": "fast"}, "args: missing required parameter 'count' for jobs.tests.declared"),
        (
            [],
            {"count": 1, "extra": 1},
            "kwargs.extra: unknown parameter 'extra' for jobs.tests.declared (parameters: count, mode)",
        ),
    ],
)
def test_a_declared_schema_is_the_one_enforced(register, args, kwargs, message):
    def declared(self, count, mode="fast", **options) -> None:
        pass

    entry = register(declared, schema=DECLARED)
    assert entry.describe()["parameters"] == DECLARED
    entry.validate([5], {"mode": "slow"})
    assert invalid(entry.name, args, kwargs).message == message


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "objekt"}, "not a valid JSON Schema"),
        ({"properties": {"count": {"maximum": "five"}}}, "not a valid JSON Schema"),
        ({"x-var-positional": {"type": 1}}, "not a valid JSON Schema"),
        (["count"], "must be a JSON object"),
        ({"properties": {"self": {"type": "string"}}}, "reserved parameter(s) self"),
        ({"properties": {"job": {"type": "string"}}}, "reserved parameter(s) job"),
    ],
)
def test_a_broken_declared_schema_is_refused_at_registration(register, schema, words):
    def broken(job, **options) -> None:
        pass

    with pytest.raises(ValueError) as caught:
        register(broken, schema=schema)
    assert str(caught.value).startswith("Task jobs.tests.broken: ")
    assert words in str(caught.value)
    assert "jobs.tests.broken" not in catalog


def test_star_args_items_are_checked(register):
    def summed(self, first: int, *rest: Annotated[int, Between(0, 9)]) -> None:
        pass

    entry = register(summed)
    assert entry.describe()["parameters"]["x-var-positional"] == {"type": "integer", "minimum": 0, "maximum": 9}
    entry.validate([1, 2, 3], {})
    assert invalid(entry.name, [1, 2, "x"]).fields == {
        "args": ["args[2]: parameter 'rest' must be an integer, got str 'x'"]
    }
    assert invalid(entry.name, [1, 10]).message == "args[1]: parameter 'rest' must be at most 9, got 10"
    assert invalid(entry.name, ["1", "x"]).message.startswith("args[0]: parameter 'first'")  # first in order


def test_a_declared_schema_cannot_let_through_what_the_function_cannot_take(register):
    def strict(self, count) -> None:
        pass

    entry = register(strict, schema={"type": "object"})
    entry.validate([1], {})
    assert invalid(entry.name, kwargs={"count": 1, "other": 2}).message == (
        "args: jobs.tests.strict: got an unexpected keyword argument 'other'"
    )
    assert invalid(entry.name).message == "args: jobs.tests.strict: missing a required argument: 'count'"
