"""Argument search on the embedded default (SQLite): a text value is a JSON string to SQLite's
JSON functions, so `?kwarg=param:value` (README's own example) finds the job in the API and the admin."""

from taskhub.testing import embedded_shell

SEARCH = """
import json
from django.test import Client
from django.test.utils import setup_test_environment
from rest_framework.test import APIClient
from accounts.models import User
from jobs.tests.factories import make
user = User.objects.create(username="searcher", email="searcher@example.com")
make(owner=user, name="text", kwargs={"param": "value", "email": "a@example.com", "n": 42})
make(owner=user, name="number", kwargs={"param": 7, "email": "b@example.com", "n": "42"})
make(owner=user, name="quote", kwargs={"param": 'it"s', "email": "c@example.com"})
api = APIClient(SERVER_NAME="localhost")
api.force_authenticate(user)
found = {}
for query in (
    "kwarg=param:value", "kwarg=email:a@example.com", 'kwarg=param:"value"', "kwarg=param:7", "kwarg=n:42",
    'kwarg=param:it"s', "kwarg=param:missing", "kwarg=param:value&kwarg=n:42",
):
    response = api.get("/api/v1/jobs/?" + query)
    ok = response.status_code == 200
    found[query] = sorted(job["name"] for job in response.json()["results"]) if ok else response.status_code
setup_test_environment()  # the admin's response.context
admin = User.objects.create_superuser(username="root", email="root@example.com", password="x")
browser = Client(SERVER_NAME="localhost")
browser.force_login(admin)
response = browser.get("/admin/jobs/job/?kwarg=param:value")
ok = response.status_code == 200
found["admin"] = sorted(job.name for job in response.context["cl"].result_list) if ok else response.status_code
print("RESULT " + json.dumps(found))
"""


def test_a_text_value_finds_its_jobs_on_sqlite(tmp_path):
    found = embedded_shell(SEARCH, var_dir=tmp_path, collectstatic=True, no_warnings=False)
    assert found == {
        "kwarg=param:value": ["text"],
        "kwarg=email:a@example.com": ["text"],
        'kwarg=param:"value"': ["text"],
        "kwarg=param:7": ["number"],
        "kwarg=n:42": ["number", "text"],  # 42 also matches the string "42", as on PostgreSQL
        'kwarg=param:it"s': ["quote"],
        "kwarg=param:missing": [],
        "kwarg=param:value&kwarg=n:42": ["text"],
        "admin": ["text"],
    }
