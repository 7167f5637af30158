"""List pages leave large args, kwargs and results out (JOB_LIST_INLINE_MAX_BYTES, 4096 by default):
the value is null and ``<field>_truncated`` true; the detail has them whole. Once, 200 jobs with
256 KiB arguments made each full list page 50 MB."""

import json

import pytest

from jobs.models import Job
from jobs.tests.factories import JobFactory, make

pytestmark = pytest.mark.django_db

LIST = "/api/v1/jobs/"
FIELDS = ("args", "kwargs", "result")


def text_of(size: int) -> str:
    """A JSON string that takes ``size`` bytes as JSON text (its quotes included)."""
    return "x" * (size - 2)


def listed(client, **params) -> dict[str, dict]:
    response = client.get(LIST, params)
    assert response.status_code == 200, response.content
    return {job["name"]: job for job in response.json()["results"]}


def test_large_values_are_left_out_of_the_list_and_whole_in_the_detail(user, user_client):
    big = make("succeeded", owner=user, name="big", args=[text_of(5000)], kwargs={"k": 1}, result={"rows": "y" * 9000})
    small = make("succeeded", owner=user, name="small", args=[1, "two"], kwargs={"k": [3]}, result=None)

    jobs = listed(user_client)

    assert jobs["big"]["args"] is None and jobs["big"]["args_truncated"] is True
    assert jobs["big"]["kwargs"] == {"k": 1} and jobs["big"]["kwargs_truncated"] is False
    assert jobs["big"]["result"] is None and jobs["big"]["result_truncated"] is True
    assert [jobs["small"][field] for field in FIELDS] == [[1, "two"], {"k": [3]}, None]
    assert not any(jobs["small"][f"{field}_truncated"] for field in FIELDS)  # a null result is not truncated
    detail = user_client.get(f"{LIST}{big.id}/").json()
    assert detail["args"] == big.args and detail["result"] == big.result
    assert not any(detail[f"{field}_truncated"] for field in FIELDS)
    assert user_client.get(f"{LIST}{small.id}/").json()["result_truncated"] is False


def test_the_limit_is_the_json_texts_bytes(user, user_client, settings):
    """At the limit the value is shown; a byte over, left out (bytes of the JSON text, as
    PostgreSQL writes it: ``[1, 2]``, ``{"a": 1}``)."""
    limit = settings.JOB_LIST_INLINE_MAX_BYTES
    assert limit == 4096
    at = [text_of(limit - 2)]  # ["xx...x"]: the brackets are the other 2 bytes
    assert len(json.dumps(at)) == limit
    make(owner=user, name="at", args=at, kwargs={"s": "é" * 10})
    make(owner=user, name="over", args=[text_of(limit - 1)], kwargs={"s": "é" * 2100})  # 2 bytes a character

    jobs = listed(user_client)

    assert jobs["at"]["args"] == at and jobs["at"]["args_truncated"] is False
    assert jobs["over"]["args"] is None and jobs["over"]["args_truncated"] is True
    assert jobs["at"]["kwargs_truncated"] is False and jobs["over"]["kwargs_truncated"] is True
    settings.JOB_LIST_INLINE_MAX_BYTES = 100
    assert listed(user_client)["at"]["args_truncated"] is True


def test_a_page_of_200_jobs_with_256_kib_arguments_stays_small(user, user_client):
    Job.objects.bulk_create(JobFactory.build_batch(200, owner=user, args=[text_of(256 * 1024 - 2)]))
    response = user_client.get(LIST, {"page_size": 100})
    assert response.status_code == 200
    assert len(response.content) < 100 * 2000, len(response.content)  # was 26 MB
    assert all(job["args_truncated"] for job in response.json()["results"])


def test_the_schema_documents_the_marker(client):
    schema = client.get("/api/schema/", {"format": "json"}).json()
    job = schema["components"]["schemas"]["Job"]["properties"]
    for field in FIELDS:
        assert job[f"{field}_truncated"]["type"] == "boolean"
        assert "JOB_LIST_INLINE_MAX_BYTES" in job[f"{field}_truncated"]["description"]
        assert job[field].get("nullable") is True
