"""Unique jobs, property-based: a hypothesis state machine per policy creates, starts, finishes,
cancels and ages jobs of two keys in any order, and checks each policy's invariants after every
step (at most one holder per key, and only in the policy's held states; debounce never later than
first + max_wait; keep_latest exactly one follow-up with the newest request)."""

from datetime import timedelta

import pytest
from django.db.models import F
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from accounts.tests.factories import UserFactory
from jobs.models import ACTIVE_STATUSES, UNIQUE_HELD_WHILE, Job, JobStatus
from jobs.services.creation import job_create
from jobs.services.execution import job_fail, job_revoke, job_start, job_succeed
from jobs.services.operations import job_cancel
from jobs.tests.factories import LONG_RUNNING_TASK

pytestmark = pytest.mark.django_db

KEYS = ("a", "b")
PERIOD, MAX_WAIT = 2.0, 5.0


def machine_for(policy: str):
    class UniqueMachine(RuleBasedStateMachine):
        def __init__(self):
            super().__init__()
            Job.objects.all().delete()
            self.owner = UserFactory(max_active_jobs=0, max_jobs_per_minute=0, max_running_jobs=0)  # 0: no caps
            self.stored = {}  # keep_latest: the newest request made while the key's job ran
            self.counter = 0

        def rule_for(self, key):
            rule = {"key": key, "policy": policy}
            if policy in ("throttle", "debounce"):
                rule["period"] = PERIOD
            if policy == "debounce":
                rule["max_wait"] = MAX_WAIT
            return rule

        def jobs(self, key, *statuses):
            query = Job.objects.filter(owner=self.owner, unique_key=key)
            return query.filter(status__in=statuses) if statuses else query

        @rule(key=st.sampled_from(KEYS))
        def create(self, key):
            self.counter += 1
            before = {job.id: job.status for job in self.jobs(key)}
            holder = self.jobs(key).filter(unique_held=True).first()
            answer = job_create(
                owner=self.owner, celery_task_name=LONG_RUNNING_TASK, args=[self.counter], unique=self.rule_for(key)
            )
            if answer.dedupe_outcome in (None, "cancelled_running"):
                assert answer.id not in before
            else:
                assert holder is not None and answer.id == holder.id  # the duplicate names the holder
            if answer.dedupe_outcome == "follow_up_queued":
                self.stored[key] = [self.counter]

        @rule(key=st.sampled_from(KEYS))
        def start(self, key):
            job = self.jobs(key, JobStatus.PENDING).order_by("created_at").first()
            if job is None:
                return
            Job.objects.filter(id=job.id).update(run_at=None)  # due now (debounce's run_at checked before)
            job_start(job_id=job.id, worker="w")

        @rule(key=st.sampled_from(KEYS), how=st.sampled_from(["succeed", "fail", "cancel"]))
        def finish(self, key, how):
            job = self.jobs(key, JobStatus.RUNNING).filter(cancel_requested_at__isnull=True).first()
            if job is None:
                return
            pending_before = set(self.jobs(key, JobStatus.PENDING).values_list("id", flat=True))
            if how == "succeed":
                job_succeed(job_id=job.id, attempts=job.attempts, worker="w")
            elif how == "fail":
                job_fail(job_id=job.id, attempts=job.attempts, worker="w", error="x", auto_retry=False)
            else:
                job_cancel(job_id=job.id)  # releases the key at once: the job is on its way out
                job_revoke(job_id=job.id, attempts=job.attempts, reason="stopped", worker="w")
                self.stored.pop(key, None)  # a follow-up only if no newer job took the key meanwhile
                return
            if policy == "keep_latest":
                follow_ups = self.jobs(key, JobStatus.PENDING).exclude(id__in=pending_before)
                expected = self.stored.pop(key, None)
                if expected is None:
                    assert not follow_ups.exists()
                else:
                    [follow_up] = follow_ups
                    assert follow_up.args == expected  # the newest request, once

        @precondition(lambda self: policy == "throttle")
        @rule(key=st.sampled_from(KEYS))
        def age(self, key):
            self.jobs(key).update(created_at=F("created_at") - timedelta(seconds=PERIOD + 1))

        @invariant()
        def one_holder_in_the_held_states(self):
            for key in KEYS:
                holders = list(self.jobs(key).filter(unique_held=True))
                assert len(holders) <= 1
                for job in holders:
                    assert job.status in UNIQUE_HELD_WHILE[policy]
                    if job.cancel_requested_at is not None:
                        assert policy == "throttle"
                if policy in ("reject", "keep_latest", "cancel_running"):
                    active = self.jobs(key, *ACTIVE_STATUSES).filter(cancel_requested_at__isnull=True)
                    if policy == "reject":
                        assert active.count() <= 1
                    else:
                        assert self.jobs(key, JobStatus.PENDING).count() <= 1
                if policy in ("reject_pending", "replace", "debounce"):
                    assert self.jobs(key, JobStatus.PENDING).count() <= 1

        @invariant()
        def debounce_never_later_than_max_wait(self):
            if policy != "debounce":
                return
            for job in Job.objects.filter(owner=self.owner, status=JobStatus.PENDING, run_at__isnull=False):
                assert job.run_at <= job.created_at + timedelta(seconds=MAX_WAIT)
                assert job.run_at >= job.created_at + timedelta(seconds=PERIOD) - timedelta(seconds=0.001)

        @invariant()
        def throttle_keeps_one_job_per_period(self):
            if policy != "throttle":
                return
            now = timezone.now()
            for key in KEYS:
                recent = self.jobs(key).filter(created_at__gt=now - timedelta(seconds=PERIOD))
                assert recent.count() <= 1

    return UniqueMachine


@pytest.mark.parametrize(
    "policy", ["reject", "reject_pending", "throttle", "replace", "debounce", "keep_latest", "cancel_running"]
)
def test_policy_state_machine(policy):
    run_state_machine_as_test(
        machine_for(policy),
        settings=settings(
            max_examples=10,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        ),
    )
