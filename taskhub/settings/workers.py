"""Celery: every CELERY_* setting (broker, results, workers, routes), the queues and beat's schedule.

Named `workers`, not `celery`, so that nobody mistakes it for the library or for taskhub/celery.py
(the Celery app, which reads these settings through the CELERY_ namespace).
"""

from datetime import timedelta

from celery.schedules import crontab

from taskhub.settings.core import TIME_ZONE
from taskhub.settings.environment import VAR_DIR, env
from taskhub.settings.jobs import JOB_MAX_TIME_LIMIT, JOB_PRIORITY_MAX_WAIT, JOB_SWEEP_INTERVAL

# https://docs.celeryq.dev/en/stable/userguide/configuration.html
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
# The filesystem transport (the embedded default) polls its folders: seconds between two looks.
BROKER_POLLING_INTERVAL = env.float("BROKER_POLLING_INTERVAL", default=0.1)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_CACHE_BACKEND = "django-cache"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Order matters: with the Redis transport's "priority" strategy the worker always polls
# high_priority first, so urgent work overtakes a backlog.
JOB_QUEUES = ("high_priority", "default", "low_priority")
# Jobs are acknowledged after they finish and re-queued when their worker process dies; the
# job row (not the message) decides whether a delivery still has anything to do.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Long jobs: a worker process reserves one message at a time, so a backlog stays in the
# broker where other workers (and higher priority queues) can get at it.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# The job row tracks start, progress and outcome: no STARTED result rows, and no task events
# (a second broker round trip per message that nothing here consumes; `celery control
# enable_events` turns them on for a monitor).
CELERY_TASK_TRACK_STARTED = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_TASK_SEND_SENT_EVENT = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker's remote-control queue (celery@<host>.celery.pidbox) is not exclusive to its connection
# (Celery 5.7's default is): a worker host cut off from RabbitMQ for a minute reconnects before
# RabbitMQ has noticed that the old connection is dead, and the exclusive redeclare failed with
# RESOURCE_LOCKED and killed the worker (the many-hosts bed, docs/RELIABILITY.md). The queue still
# expires 10 s after its last consumer (CELERY_CONTROL_QUEUE_EXPIRES).
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#control-queue-exclusive
CELERY_CONTROL_QUEUE_EXCLUSIVE = False
# A worker that lost its broker connection while running jobs takes its full prefetch again once it
# reconnects. Celery's default lowers it by the jobs running at the loss and raises it back only as
# jobs received *after* the reconnect are acknowledged: a worker cut off (or paused) with 2 running
# jobs came back running 1 job at a time until its first new job ended (30 s in the many-hosts bed's
# scenario 2 on RabbitMQ; hours with long jobs). A message fetched while an old run still holds a
# process waits there until that run ends, or, once the queue is empty, the sweeper sends it again
# (JOB_LOST_AFTER): a bounded wait against a lost half of the worker.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#worker-enable-prefetch-count-reduction
CELERY_WORKER_ENABLE_PREFETCH_COUNT_REDUCTION = False
# What a task prints (the console email backend's messages, a print()) is logged at INFO, not
# as a WARNING (Celery's default): printing is not a problem.
CELERY_WORKER_REDIRECT_STDOUTS_LEVEL = "INFO"
# Celery's Django fixup closes every database connection before and after every task unless this
# is set (and with a connection pool in a prefork worker it closes the whole pool): a new PostgreSQL
# connection per job. taskhub instead recycles connections per task as Django does per request
# (taskhub/celery.py). https://github.com/celery/celery/blob/main/celery/fixups/django.py
CELERY_DB_REUSE_MAX = 2**31
# django-celery-beat's DatabaseScheduler, extended so that a schedule of a catalog task fires a
# tracked job (jobs/schedules/scheduler.py). https://django-celery-beat.readthedocs.io/en/latest/
CELERY_BEAT_SCHEDULER = "jobs.schedules.scheduler:JobScheduler"

if CELERY_BROKER_URL.startswith("filesystem://"):
    # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.filesystem.html
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
        # A consumer that finds no message it may take sleeps this long before it looks again;
        # kombu's 1 s let a worker take ~1 message a second (bench/broker_drain.py).
        "polling_interval": BROKER_POLLING_INTERVAL,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # Publishing fails fast when the broker is down (the API answers at once and the
        # sweeper sends the job later) instead of retrying inside the request for seconds.
        # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.html#kombu.Connection.default_channel
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.2,
    }
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        CELERY_BROKER_TRANSPORT_OPTIONS |= {
            # https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#visibility-timeout
            "visibility_timeout": JOB_MAX_TIME_LIMIT + 3600,
            # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.redis.html
            "queue_order_strategy": "priority",
            # A broker host cut off by the network (packets dropped) left a command waiting for its
            # reply for the kernel's ~15 minutes: an API create hung in its send. Now the send fails
            # after 5 s (the row stays unsent; the sweeper sends it), a new connection as fast; longer
            # than kombu's 1 s BRPOP, so a worker's idle wait is unaffected. The many-hosts bed's
            # scenario 3 (docs/RELIABILITY.md).
            # https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html#configuration
            "socket_timeout": 5.0,
            "socket_connect_timeout": 5.0,
            "socket_keepalive": True,
        }
    # RabbitMQ (amqp://) has neither: an unacknowledged message goes back to its queue when the
    # worker's connection closes (raise RabbitMQ's consumer_timeout above JOB_MAX_TIME_LIMIT), and a
    # worker serves its queues in no particular order, so high_priority needs a worker of its own for
    # urgent jobs to overtake a backlog (docs/RELIABILITY.md, "Priorities on RabbitMQ").

# Celery's result rows (django-celery-results) are deleted this many seconds after they were
# written (0: kept forever), by beat's purge_jobs task (below) and by Celery's own daily celery.backend_cleanup.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-expires
CELERY_RESULT_EXPIRES = timedelta(seconds=env.int("CELERY_RESULT_EXPIRES", default=24 * 3600))

# Housekeeping has a queue and a worker of its own (the Procfile's maintenance process): it must
# run while user jobs occupy every other worker process. Expired runs are dropped, not piled up.
CELERY_TASK_ROUTES = {"jobs.tasks.maintenance_tasks.*": {"queue": "maintenance"}}
CELERY_BEAT_SCHEDULE = {
    "taskhub-dispatch-jobs": {
        "task": "jobs.tasks.maintenance_tasks.dispatch_jobs",
        "schedule": JOB_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
    },
    # Deadlines: pending jobs past their expires_at end expired, even those no message will reach.
    "taskhub-expire-jobs": {
        "task": "jobs.tasks.maintenance_tasks.expire_jobs",
        "schedule": JOB_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
    },
    "taskhub-recover-jobs": {
        "task": "jobs.tasks.maintenance_tasks.recover_jobs",
        "schedule": JOB_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
    },
    # No starvation (jobs/services/promotion.py): jobs that waited JOB_PRIORITY_MAX_WAIT on a lower
    # queue go to high_priority. Not scheduled when JOB_PRIORITY_MAX_WAIT is 0 (off).
    **(
        {
            "taskhub-promote-jobs": {
                "task": "jobs.tasks.maintenance_tasks.promote_jobs",
                "schedule": JOB_SWEEP_INTERVAL,
                "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
            }
        }
        if JOB_PRIORITY_MAX_WAIT
        else {}
    ),
    # Metrics' totals (jobs/services/metrics.py) also advance at each scrape; this keeps them current
    # between scrapes and catches up after a pause. Every minute: each pass reads only new rows.
    "taskhub-rollup-metrics": {
        "task": "jobs.tasks.maintenance_tasks.rollup_metrics",
        "schedule": 60.0,
        "options": {"queue": "maintenance", "expires": 180},
    },
    # Retention (JOB_RETENTION_* in taskhub/settings/jobs.py, CELERY_RESULT_EXPIRES): old jobs and results.
    "taskhub-purge-jobs": {
        "task": "jobs.tasks.maintenance_tasks.purge_jobs",
        # Daily at a quiet hour (CELERY_TIMEZONE); a run missed by 12 hours is dropped, the next one catches up.
        "schedule": crontab(minute=30, hour=3),
        "options": {"queue": "maintenance", "expires": 12 * 3600},
    },
}
