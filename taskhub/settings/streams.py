"""Live progress: the server-sent event streams (jobs/live.py, jobs/streams/)."""

from taskhub.settings.environment import env
from taskhub.settings.workers import CELERY_BROKER_URL

# The worker-side services publish each committed change on Redis pub/sub. Unset: the broker when
# it is Redis, else CACHE_URL when that is Redis, else nothing (the embedded default: streams poll
# the rows instead). "none" turns publishing off. https://redis.io/docs/latest/develop/pubsub/
_events_url = env.str("JOB_EVENTS_REDIS_URL", default=None)
if _events_url is None:
    _candidates = (CELERY_BROKER_URL, env.str("CACHE_URL", default=""))
    _events_url = next((url for url in _candidates if url.startswith(("redis://", "rediss://"))), "")
JOB_EVENTS_REDIS_URL = "" if _events_url.lower() in ("", "none", "off") else _events_url
# Pub/sub channels are server-wide (not per Redis db): the channel name ends with the db number.
JOB_EVENTS_CHANNEL = env.str("JOB_EVENTS_CHANNEL", default="taskhub:jobs")
JOB_STREAM_KEEPALIVE = env.float("JOB_STREAM_KEEPALIVE", default=15.0)  # seconds; also the re-read period with Redis
JOB_STREAM_POLL_INTERVAL = env.float("JOB_STREAM_POLL_INTERVAL", default=0.5)  # seconds, without Redis
JOB_STREAM_MAX_SECONDS = env.float("JOB_STREAM_MAX_SECONDS", default=3600.0)  # then the client reconnects
JOB_STREAM_DB_THREADS = env.int("JOB_STREAM_DB_THREADS", default=2)  # per web process, one connection each
JOB_STREAM_LIST_LIMIT = env.int("JOB_STREAM_LIST_LIMIT", default=500)  # active jobs a list stream tracks
# Open streams per user, counted across web processes with Redis (per process without); the next is a 429.
JOB_STREAM_MAX_PER_USER = env.int("JOB_STREAM_MAX_PER_USER", default=10)
