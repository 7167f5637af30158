"""A check of the schemathesis run (test_schemathesis.py), loaded through ``SCHEMATHESIS_HOOKS``.

positive_data_acceptance wants every schema-valid request accepted. Everything a schema can say
(unknown keys, NUL characters, types, lengths, enums, nullability) the document says, so such a
request is not refused for it. What no schema can say stays a 400: a name that must exist (a task,
a cursor the API gave out), a task's own arguments (the catalog's per-task schema), a password that
must be right or strong, a token that must be one, a search term that must be JSON, a choice
between two fields. The run lets positive_data_acceptance take 400, and this check takes it back:
a 400 to a schema-valid request must name only fields of that kind. Likewise a 422, which only an
Idempotency-Key sent before with another body may get (the run's generated keys repeat).
"""

import json

import schemathesis
from schemathesis.core import NOT_SET
from schemathesis.core.jsonschema import make_validator

# The fields a 400 to a schema-valid request may name, and why no schema says what they take.
SEMANTIC_FIELDS = {
    "cursor": "an opaque cursor the API gave out",
    "celery_task_name": "a task of the catalog (settings decide which)",
    "task": "a task name or alias of the catalog",
    "args": "the task's own parameters",
    "kwargs": "the task's own parameters",
    "kwarg": "a key of the task's parameters",
    "arg": "a value read as JSON",
    "kwargs_contains": "a JSON object, written as text",
    "args_contains": "a JSON array, written as text",
    "queue": "one of queue and task, not both",
    "password": "Django's password validators (common, similar to the username)",
    "new_password": "Django's password validators",
    "old_password": "the right password",
    "current_password": "the right password",
    "token": "a token the server signed",
    "refresh": "a token the server signed",
    "username": "a name nobody has, not a reserved one",
    "email": "an address nobody has",
    "name": "a schedule name the owner has not used",
    "interval": "one of interval and crontab",
    "crontab": "one of interval and crontab",
    "start_time": "before expires",
    "expires": "after start_time and not past",
    "expires_at": "a job's deadline: in the future, after run_at, not with expires_in",
    "expires_in": "a job's deadline: one of expires_at and expires_in, after run_at",
    "minute": "a cron expression",
    "hour": "a cron expression",
    "day_of_week": "a cron expression",
    "day_of_month": "a cron expression",
    "month_of_year": "a cron expression",
    "timezone": "an IANA time zone name",
    # A uniqueness rule's fields depend on each other (jobs/unique.py): the policy decides which apply.
    "period": "required by the throttle and debounce policies, refused by the others",
    "max_wait": "debounce only, at least the period",
    "key": "not only spaces; not given with kwargs (which derive it)",
    "after": "ids of the workflow's other steps, without a cycle",
    "id": "a step id used once in its workflow",
}


def _body_is_schema_valid(case) -> bool:
    """The stateful phase fills bodies from earlier responses through links (an error's ``fields``
    as a body) and still calls them positive: a body its own schema refuses is not valid data."""
    if case.body is NOT_SET:
        return True
    alternative = case.operation.get_body_for_media_type(case.media_type)
    if alternative is None:
        return True
    validator_cls = case.operation.schema.adapter.jsonschema_validator_cls
    try:
        return make_validator(alternative.optimized_schema, validator_cls).is_valid(case.body)
    except Exception:  # noqa: BLE001 - a schema or value the validator cannot read: judge the answer anyway
        return True


@schemathesis.check
def refusal_of_valid_data_is_semantic(ctx, response, case):
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code not in (400, 422):
        return None
    if not _body_is_schema_valid(case):
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {}
    if response.status_code == 422:
        # The only 422 a schema-valid request may get: an Idempotency-Key the run already sent with
        # another body (the server's memory of earlier requests, which no schema can say).
        if isinstance(body, dict) and body.get("code") == "idempotency_key_reused":
            return None
        raise AssertionError(f"A schema-valid request was refused (422): {response.text[:500]}")
    fields = sorted(body.get("fields", {})) if isinstance(body, dict) else []
    named = [field.split(".")[-1].split("[")[0] for field in fields]  # jobs[0].celery_task_name
    if fields and all(field in SEMANTIC_FIELDS for field in named):
        return None
    raise AssertionError(
        f"A schema-valid request was refused (400) naming {', '.join(fields) or 'no field'}, "
        f"which the document could have constrained: {response.text[:500]}"
    )
