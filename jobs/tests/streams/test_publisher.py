"""The publisher's own ways (jobs/live.py): its NUMSUB connection, and the publishing thread of a
worker's pool process. The publisher's answers themselves: test_stream.py."""

import logging
import threading

import pytest
import redis

from jobs import live
from jobs.live import JobState, _Background, _listeners, channel
from jobs.services.execution import job_succeed, job_update_progress
from jobs.tests.factories import JobFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the publishing thread reads on its own connection


@pytest.fixture(autouse=True)
def _publishing_not_paused():
    live._publisher.paused_until = 0.0
    yield
    live._publisher.paused_until = 0.0


@pytest.fixture
def subscriber(settings):
    if not settings.JOB_EVENTS_REDIS_URL:
        pytest.fail("JOB_EVENTS_REDIS_URL is empty: run the suite with `make test` (a Redis broker)")
    pubsub = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(channel())
    pubsub.get_message(timeout=1)  # the subscription's confirmation

    def received(timeout: float = 2.0) -> list[JobState]:
        messages = []
        while (message := pubsub.get_message(timeout=timeout)) is not None:
            messages.append(JobState.from_message(message["data"]))
            timeout = 0.05
        return messages

    yield received
    pubsub.close()


@pytest.fixture
def background(monkeypatch):
    """This process publishing as a worker's pool process does (a thread of its own), nobody known
    to listen yet."""
    thread = _Background()
    monkeypatch.setattr(live, "_background", thread)
    monkeypatch.setattr(live._publisher, "listened", False)
    monkeypatch.setattr(live._Mode, "background", True)
    return thread


def test_a_listener_count_connection_redis_closed_is_replaced_at_the_next_write(user, settings, subscriber, caplog):
    """The publisher asks PUBSUB NUMSUB on a connection of its own (not redis-py's client): one that
    Redis closed (a restart, an idle timeout) is replaced at once, the change published, no warning."""
    job = JobFactory(owner=user, running=True)
    job_update_progress(job_id=job.id, attempts=0, progress=10)
    assert [state.progress for state in subscriber()] == [10]
    host, port = _listeners._connection._sock.getsockname()[:2]
    client = redis.Redis.from_url(settings.JOB_EVENTS_REDIS_URL)
    assert client.client_kill_filter(_type=None, addr=f"{host}:{port}") == 1
    client.close()
    with caplog.at_level(logging.WARNING, logger="jobs.live"):
        job_update_progress(job_id=job.id, attempts=0, progress=20)
    assert [state.progress for state in subscriber()] == [20]
    assert not [record for record in caplog.records if "could not publish" in record.getMessage()]


@pytest.fixture
def slow_numsub(monkeypatch):
    """PUBSUB NUMSUB recording the thread that asks, each answer held until ``release`` is set."""
    asked, busy, release = [], threading.Event(), threading.Event()
    count = _listeners.count

    def slow_count(url, name):
        asked.append(threading.current_thread().name)
        busy.set()
        release.wait(10)
        return count(url, name)

    monkeypatch.setattr(_listeners, "count", slow_count)
    return asked, busy, release


def test_in_a_pool_process_with_no_listener_the_job_thread_never_waits_for_redis(user, background, slow_numsub):
    """The job's writes hand their publish over; the changes that arrive while the thread is busy are
    asked about together (one NUMSUB)."""
    asked, busy, release = slow_numsub
    job, other = JobFactory(owner=user, running=True), JobFactory(owner=user, running=True)
    job_update_progress(job_id=job.id, attempts=0, progress=10)
    assert busy.wait(10)
    for percent in (20, 30, 40):
        job_update_progress(job_id=job.id, attempts=0, progress=percent)
    job_succeed(job_id=other.id, attempts=0, result=1)  # returned while the thread still waits
    assert not release.is_set() and asked == ["job-live-publish"]
    release.set()
    assert live.flush_publishing(timeout=10)
    assert asked == ["job-live-publish"] * 2  # the second NUMSUB for the four changes that waited
    assert not live._publisher.listened


def test_once_a_listener_is_found_the_job_thread_publishes_each_state_itself(user, subscriber, background, slow_numsub):
    asked, _, release = slow_numsub
    release.set()
    job = JobFactory(owner=user, running=True)
    job_update_progress(job_id=job.id, attempts=0, progress=10)  # handed over: nobody was known to listen
    assert live.flush_publishing(timeout=10) and live._publisher.listened
    for percent in (20, 30):
        job_update_progress(job_id=job.id, attempts=0, progress=percent)
    job_succeed(job_id=job.id, attempts=0, result=1)
    assert asked == ["job-live-publish", "MainThread", "MainThread", "MainThread"]
    states = subscriber()
    assert [(state.status, state.progress) for state in states] == [
        ("running", 10),
        ("running", 20),
        ("running", 30),
        ("succeeded", 100),
    ]


def test_flush_returns_once_what_was_handed_over_is_published(user, subscriber, background):
    job = JobFactory(owner=user, running=True)
    job_succeed(job_id=job.id, attempts=0, result=2)
    assert live.flush_publishing(timeout=10)
    [state] = subscriber(timeout=0.5)
    assert state.job_id == str(job.id) and state.terminal
