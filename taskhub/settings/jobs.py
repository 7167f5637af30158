"""taskhub's own job settings: limits, intervals, quotas, retention, and Django's task API (TASKS).

Celery's settings (the broker, the workers, the beat schedule) are in taskhub/settings/workers.py;
the live progress streams' in taskhub/settings/streams.py.
"""

import re

from django.core.exceptions import ImproperlyConfigured

from taskhub.settings.environment import env

# Limits on jobs; the broker visibility timeout must outlast the longest job, or Redis would
# hand a running job's message to a second worker.
JOB_MAX_TIME_LIMIT = env.int("JOB_MAX_TIME_LIMIT", default=6 * 3600)
JOB_DEFAULT_TIME_LIMIT = env.int("JOB_DEFAULT_TIME_LIMIT", default=3600)
JOB_HEARTBEAT_INTERVAL = env.float("JOB_HEARTBEAT_INTERVAL", default=5.0)
JOB_STALE_AFTER = env.float("JOB_STALE_AFTER", default=60.0)
JOB_CANCEL_GRACE_SECONDS = env.float("JOB_CANCEL_GRACE_SECONDS", default=30.0)
JOB_PROGRESS_MIN_INTERVAL = env.float("JOB_PROGRESS_MIN_INTERVAL", default=0.5)
JOB_DISPATCH_AFTER = env.float("JOB_DISPATCH_AFTER", default=10.0)
# A sent job due this long that nobody started, whose queue is empty, lost its message: sent again.
JOB_LOST_AFTER = env.float("JOB_LOST_AFTER", default=60.0)
JOB_MAX_PAYLOAD_BYTES = env.int("JOB_MAX_PAYLOAD_BYTES", default=256 * 1024)
JOB_BULK_MAX = env.int("JOB_BULK_MAX", default=500)
JOB_BULK_MAX_BYTES = env.int("JOB_BULK_MAX_BYTES", default=1024 * 1024)
# Most steps of one workflow (POST /api/v1/workflows/, jobs.workflows.workflow_create).
WORKFLOW_MAX_STEPS = env.int("WORKFLOW_MAX_STEPS", default=10_000)
# A list page shows a job's args, kwargs and result up to this many bytes of JSON text each; larger
# ones are null there with <field>_truncated true (the detail has them whole).
JOB_LIST_INLINE_MAX_BYTES = env.int("JOB_LIST_INLINE_MAX_BYTES", default=4096)
JOB_SWEEP_INTERVAL = env.float("JOB_SWEEP_INTERVAL", default=10.0)


def _seconds(name: str, raw: str) -> float:
    """A duration setting: seconds (``600``) or a whole number and a unit, or a sum (``10m``, ``1h30m``)."""
    text = raw.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if re.fullmatch(r"(?:\d+[smhdw])+", text):
        units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
        return float(sum(int(number) * units[unit] for number, unit in re.findall(r"(\d+)([smhdw])", text)))
    raise ImproperlyConfigured(
        f"{name} must be a number of seconds or a duration such as 10m or 1h30m (0: off), got {raw!r}."
    )


# No starvation (jobs/services/promotion.py): a job waiting on a lower queue (default, low_priority)
# starts within this long whatever the stream of urgent/high jobs: the sweep sends it again to
# high_priority once it has waited this long minus a margin (a tenth of it, at least three sweep
# intervals). Seconds or a duration (10m); 0 turns it off. At least six sweep intervals.
JOB_PRIORITY_MAX_WAIT = _seconds("JOB_PRIORITY_MAX_WAIT", env.str("JOB_PRIORITY_MAX_WAIT", default="10m"))
if 0 < JOB_PRIORITY_MAX_WAIT < 6 * JOB_SWEEP_INTERVAL:
    raise ImproperlyConfigured(
        f"JOB_PRIORITY_MAX_WAIT ({JOB_PRIORITY_MAX_WAIT:g}s) must be 0 (off) or at least six sweep intervals "
        f"(JOB_SWEEP_INTERVAL={JOB_SWEEP_INTERVAL:g}s, i.e. {6 * JOB_SWEEP_INTERVAL:g}s): the sweep promotes a job "
        "at most once an interval."
    )
# Per-user quotas (429 over either): active = pending or running jobs; per minute = new jobs in any
# 60 seconds (a bulk request counts each job). 0 = no limit; a user's own limits (admin) override these.
JOB_QUOTA_MAX_ACTIVE = env.int("JOB_QUOTA_MAX_ACTIVE", default=1000)
JOB_QUOTA_PER_MINUTE = env.int("JOB_QUOTA_PER_MINUTE", default=1000)
JOB_QUOTA_EXEMPT_STAFF = env.bool("JOB_QUOTA_EXEMPT_STAFF", default=True)
# Fair shares (jobs/services/_quotas.py): at most this many running jobs per user, checked at the
# start; a job over it waits (deferred, nothing fails). "auto": JOB_FAIR_SHARE of the worker
# processes alive for the job's queue (at least 1), so one user always leaves room for the others;
# a number: that many; 0: no limit. A user's own max_running_jobs (admin) overrides it.
JOB_QUOTA_MAX_RUNNING = env.str("JOB_QUOTA_MAX_RUNNING", default="auto")
if JOB_QUOTA_MAX_RUNNING.strip().lower() != "auto" and not JOB_QUOTA_MAX_RUNNING.strip().isdigit():
    raise ImproperlyConfigured(
        f"JOB_QUOTA_MAX_RUNNING must be 'auto' or a whole number, got {JOB_QUOTA_MAX_RUNNING!r}."
    )
JOB_FAIR_SHARE = env.float("JOB_FAIR_SHARE", default=0.5)
# A job over its owner's share is tried again after (its owner's due backlog / their share)
# seconds, at least 1 and at most this: a long backlog costs the workers little while it waits.
JOB_FAIR_SHARE_MAX_WAIT = env.float("JOB_FAIR_SHARE_MAX_WAIT", default=30.0)
# Schedules (/api/v1/schedules/, jobs/schedules/services.py): at most this many per user (429 over it;
# 0 = no limit), and for users who are not staff at least this many seconds between two firings of an
# interval (400 naming interval; a crontab fires at most once a minute anyway).
JOB_SCHEDULE_MAX_PER_USER = env.int("JOB_SCHEDULE_MAX_PER_USER", default=50)
JOB_SCHEDULE_MIN_INTERVAL_SECONDS = env.int("JOB_SCHEDULE_MIN_INTERVAL_SECONDS", default=60)
# A firing also fires the slots its schedule missed since its last fired one (beats late, a beat
# restarted), each once, going back at most this many seconds; older ones are logged, not fired.
# 0: Celery's behaviour (one firing for a missed period).
JOB_SCHEDULE_CATCH_UP_SECONDS = env.int("JOB_SCHEDULE_CATCH_UP_SECONDS", default=300)
# Whom users who are not staff may notify (send_notification) besides themselves: addresses, or @domain.
JOB_NOTIFY_ALLOWED_RECIPIENTS = env.list("JOB_NOTIFY_ALLOWED_RECIPIENTS", default=[])
# send_notification: at most this many recipients per user in any 24 hours (staff exempt; 0: no limit).
JOB_NOTIFY_DAILY_LIMIT = env.int("JOB_NOTIFY_DAILY_LIMIT", default=50)

# Django's standard task API (django.tasks; on Django 5.2 the django-tasks backport): @task
# functions run as tracked jobs (jobs/tasks/django_backend.py, README "Using Django's task API").
# QUEUES: the queue_name values tasks may use (taskhub's queues); OWNER: the name of the service
# account owning jobs enqueued outside `owned_by(user)` (made by accounts migration 0006, found by
# its flag is_service_account, a name nobody may register); MAX_RETRIES: automatic retries.
# https://docs.djangoproject.com/en/6.0/topics/tasks/
# A task path may name product code of installed apps only: never a module with a tests, test_*,
# testing, conftest, migrations or management segment, except the modules named here (the test
# suite's own, jobs.tests.standard_tasks, which `make test` sets); empty in production.
TASKS_ALLOWED_TEST_MODULES = env.list("TASKS_ALLOWED_TEST_MODULES", default=[])
TASKS = {
    "default": {
        "BACKEND": "jobs.tasks.django_backend.TaskhubBackend",
        "QUEUES": ["default", "high_priority", "low_priority"],
        "OPTIONS": {
            "OWNER": env.str("TASKS_OWNER", default="django-tasks"),
            "MAX_RETRIES": env.int("TASKS_MAX_RETRIES", default=0),
        },
    }
}

# --- Retention ----------------------------------------------------------------------------------
# How long finished jobs (and their timelines) are kept after they finished, per status: a whole
# number and a unit (s, m, h, d, w), e.g. 30d or 12h; empty or 0 keeps them forever. Beat's
# daily purge_jobs task and `manage.py cleanup_jobs` (without --older-than) delete the older ones,
# JOB_RETENTION_BATCH_SIZE rows per short transaction.
JOB_RETENTION_SUCCEEDED = env.str("JOB_RETENTION_SUCCEEDED", default="30d")
JOB_RETENTION_FAILED = env.str("JOB_RETENTION_FAILED", default="90d")
JOB_RETENTION_REVOKED = env.str("JOB_RETENTION_REVOKED", default="30d")
# Expired jobs (not started by their expires_at: they never ran) are kept as long as revoked ones.
JOB_RETENTION_EXPIRED = env.str("JOB_RETENTION_EXPIRED", default="30d")
# Dead jobs (failed with every automatic retry used: the admin's "Dead jobs", API ?dead=true) may
# be kept apart from the other failed ones, e.g. 180d (Sidekiq keeps its Dead set 6 months) while
# JOB_RETENTION_FAILED is shorter. Empty (the default): as JOB_RETENTION_FAILED; 0: forever.
JOB_RETENTION_DEAD = env.str("JOB_RETENTION_DEAD", default="")
JOB_RETENTION_BATCH_SIZE = env.int("JOB_RETENTION_BATCH_SIZE", default=1000)
