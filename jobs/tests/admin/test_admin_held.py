"""Why a pending job waits, on the job list and the job page (and in the progress view the pages poll):
its queue is paused, a rate limit deferred it, its owner already runs their share, or an automatic
retry waits out its backoff, each with "until HH:MM:SS" where a time is known; and every attempt's
outcome with its error and traceback on the job page. The holds are made by the services a worker
calls (``job_start``, ``job_fail``) and the operators' queue control, as in production."""

import html
import re
from datetime import timedelta

from django.db.models import F
from django.utils import timezone

from jobs.admin.rendering import clock_text
from jobs.models import Job, JobStatus
from jobs.queues.services import queue_pause, rate_limit_set
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_start, job_succeed
from taskhub.testing.admin import CHANGELIST, PROGRESS, TASK, change_url

WORKER = "celery@worker-1"


def create(owner, name: str = "held job", **request) -> Job:
    return job_create(owner=owner, name=name, celery_task_name=TASK, args=[1], **request)


def text_of(response) -> str:
    """The page's text, tags and entities gone, runs of spaces as one."""
    content = re.sub(r"<[^>]+>", " ", response.content.decode())
    return re.sub(r"\s+", " ", html.unescape(content))


def hold_for_a_while(job: Job) -> None:
    """Move a short wait's end (its ``run_at``) 10 minutes on: the reason shown is read from the row and
    the line that deferred it, whatever the wait's length; on a loaded machine a 1 s wait ended
    between two page loads (CI's Django 6 leg: the job page showed no hold)."""
    Job.objects.filter(pk=job.pk).update(run_at=F("run_at") + timedelta(minutes=10))


def held_of(client, job: Job) -> dict:
    return client.get(PROGRESS, {"ids": str(job.pk)}).json()["jobs"][0]


def test_a_job_of_a_paused_queue_says_so(operator_client, operator, owner):
    queue_pause(queue="default", by=operator, source="admin", reason="deploy in progress")
    job = create(owner)

    list_text = text_of(operator_client.get(CHANGELIST))
    assert "held: queue default is paused (deploy in progress)" in list_text
    assert "held: queue default is paused (deploy in progress)" in text_of(operator_client.get(change_url(job)))
    state = held_of(operator_client, job)
    assert state["held"] == {"reason": "queue_paused", "until": None}
    assert state["message"] == "held: queue default is paused (deploy in progress)"


def test_a_job_deferred_by_a_rate_limit_says_until_when(operator_client, operator, owner):
    owner.max_running_jobs = 0  # no running cap: only the rate limit holds the second job
    owner.save(update_fields=["max_running_jobs"])
    rate_limit_set(scope="queue", name="default", limit=1, period=3600, by=operator, source="admin")
    first, second = create(owner, "first"), create(owner, "second")
    assert job_start(job_id=first.pk, worker=WORKER) is not None
    assert job_start(job_id=second.pk, worker=WORKER) is None  # no slot: deferred
    second.refresh_from_db()
    until = clock_text(second.run_at)

    expected = f"rate limit queue default: 1 per 3600s, until {until}"
    assert expected in text_of(operator_client.get(CHANGELIST))
    assert expected in text_of(operator_client.get(change_url(second)))
    state = held_of(operator_client, second)
    assert state["held"] == {"reason": "rate_limit", "until": second.run_at.isoformat()}


def test_a_job_over_its_owners_share_says_until_when(operator_client, owner):
    owner.max_running_jobs = 1
    owner.save(update_fields=["max_running_jobs"])
    first, second = create(owner, "first"), create(owner, "second")
    assert job_start(job_id=first.pk, worker=WORKER) is not None
    assert job_start(job_id=second.pk, worker=WORKER) is None  # over the share: waits
    hold_for_a_while(second)  # its wait is 1 s: the pages below must not race its end
    second.refresh_from_db()

    expected = f"fair share: its owner runs 1 job at once at most, until {clock_text(second.run_at)}"
    assert expected in text_of(operator_client.get(CHANGELIST))
    assert expected in text_of(operator_client.get(change_url(second)))
    assert held_of(operator_client, second)["held"] == {"reason": "fair_share", "until": second.run_at.isoformat()}


def test_a_job_waiting_for_its_automatic_retry_says_until_when(operator_client, owner):
    job = create(owner, max_retries=3)
    started = job_start(job_id=job.pk, worker=WORKER)
    assert job_fail(job_id=job.pk, attempts=started.attempts, error="RuntimeError: boom", worker=WORKER)
    hold_for_a_while(job)  # its backoff is seconds: the pages below must not race its end
    job.refresh_from_db()
    assert job.run_at > timezone.now()

    expected = f"retry backoff: attempt 2 of 4, until {clock_text(job.run_at)}"
    assert expected in text_of(operator_client.get(CHANGELIST))
    assert expected in text_of(operator_client.get(change_url(job)))
    assert held_of(operator_client, job)["held"] == {"reason": "retry_backoff", "until": job.run_at.isoformat()}


def test_a_job_waiting_for_a_worker_is_not_held(operator_client, owner):
    job = create(owner)
    state = held_of(operator_client, job)
    assert state["held"] is None and state["message"] == "queued"


def test_every_attempt_is_on_the_job_page_with_its_error_and_traceback(operator_client, owner):
    job = create(owner, max_retries=2)
    for number in (1, 2):
        started = job_start(job_id=job.pk, worker=f"celery@worker-{number}")
        job_fail(
            job_id=job.pk,
            attempts=started.attempts,
            error=f"ValueError: bad row {number}",
            traceback=f"Traceback (most recent call last):\n  File 'x.py', line {number}\nValueError: row {number}\n",
            worker=f"celery@worker-{number}",
        )
        Job.objects.filter(pk=job.pk).update(run_at=None)  # skip the backoff: the next start is due
    started = job_start(job_id=job.pk, worker="celery@worker-3")
    job_succeed(job_id=job.pk, attempts=started.attempts, result={"ok": True}, worker="celery@worker-3")

    page = operator_client.get(change_url(job)).content.decode()
    section = page[page.index('id="job-attempts-heading"') :]
    rows = re.findall(r'<tr class="job-attempt-row[^"]*">(.*?)</tr>', section, re.S)
    assert len(rows) == 3, rows
    first, second, third = (re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", row))) for row in rows)
    assert "1" in first and "worker-1" in first and "failed, retried" in first and "ValueError: bad row 1" in first
    assert "worker-2" in second and "ValueError: bad row 2" in second
    assert "worker-3" in third and "succeeded" in third
    details = re.findall(r"<details[^>]*>.*?</details>", section, re.S)
    assert len(details) == 2
    assert "line 1" in html.unescape(details[0]) and "line 2" in html.unescape(details[1])


def test_a_job_never_started_has_no_attempts_yet(operator_client, owner):
    job = create(owner)
    page = operator_client.get(change_url(job)).content.decode()
    assert "No attempt has started yet." in page
    assert Job.objects.get(pk=job.pk).status == JobStatus.PENDING
