"""taskhub settings: everything comes from the environment (12-factor), with an optional `.env`.

With nothing set, taskhub runs on its embedded default: a SQLite file and Celery's filesystem
transport under `var/`, so it works on one machine with no services installed.
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("TASKHUB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# https://django-environ.readthedocs.io/en/latest/quickstart.html (values set in the real
# environment win over the file).
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

INSECURE_SECRET_KEYS = {"", "change-me", "changeme", "secret", "your-secret-key"}
# SECRET_KEY from the environment (or .env), else from a file (a mounted secret, or the one
# `make` generates once into var/secret_key).
SECRET_KEY_FILE = Path(env.str("SECRET_KEY_FILE", default=str(VAR_DIR / "secret_key")))
SECRET_KEY = env.str("SECRET_KEY", default="") or (
    SECRET_KEY_FILE.read_text().strip() if SECRET_KEY_FILE.is_file() else ""
)
if not SECRET_KEY or SECRET_KEY in INSECURE_SECRET_KEYS or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is missing or a known default: set SECRET_KEY (or SECRET_KEY_FILE) to a long random "
            "value, run `make install` to generate var/secret_key, or set DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-local-development-only-" + "x" * 20

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_celery_results",
    "accounts",
    "jobs",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # https://whitenoise.readthedocs.io/en/stable/django.html
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "taskhub.middleware.RejectNulParametersMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: under ASGI the chain above runs synchronously, entered once per request (taskhub/middleware.py).
    "taskhub.middleware.SynchronousChainMiddleware",
]

ROOT_URLCONF = "taskhub.urls"
WSGI_APPLICATION = "taskhub.wsgi.application"
ASGI_APPLICATION = "taskhub.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'taskhub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, worker and beat write to the same file at once: WAL lets readers run beside the
    # writer, IMMEDIATE takes the write lock at BEGIN (no lock upgrade deadlocks) and the busy
    # timeout makes writers queue instead of failing.
    # https://docs.djangoproject.com/en/5.2/ref/databases/#setting-pragma-options
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_DATABASE_NAME", default=None)
    _pool_max_size = env.int("DATABASE_POOL_MAX_SIZE", default=8)
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and _pool_max_size > 0:
        # A psycopg connection pool per process. Under ASGI every request runs in a thread of its own,
        # so persistent per-thread connections piled up (16 API clients exhausted PostgreSQL's 100).
        # A request or task borrows a connection and gives it back; when all are busy it waits (up to
        # DATABASE_POOL_TIMEOUT seconds) instead of failing. Pooling needs CONN_MAX_AGE = 0.
        # https://docs.djangoproject.com/en/5.2/ref/databases/#connection-pool
        # https://www.psycopg.org/psycopg3/docs/api/pool.html#psycopg_pool.ConnectionPool
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": env.int("DATABASE_POOL_MIN_SIZE", default=1),
            "max_size": _pool_max_size,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    else:  # DATABASE_POOL_MAX_SIZE=0 (e.g. behind PgBouncer): persistent connections
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
DATABASES["default"]["ATOMIC_REQUESTS"] = False

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "accounts.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- i18n, static -----------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # https://whitenoise.readthedocs.io/en/stable/django.html#add-compression-and-caching-support
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# --- Security (production) --------------------------------------------------------------------
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("BEHIND_TLS_PROXY", default=False) else None
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
# Both only take effect once SECURE_HSTS_SECONDS > 0 (HSTS is off by default). On by default
# so that turning HSTS on passes `check --deploy` (security.W005, W021), as cookiecutter-django
# does; set them false if some subdomain is not served over HTTPS or to stay off the browsers'
# preload list (https://hstspreload.org/#opt-in).
# https://docs.djangoproject.com/en/5.2/ref/middleware/#http-strict-transport-security
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# Notifications: the console by default; EMAIL_URL (e.g. smtp+tls://user:pass@mail.example.com:587)
# configures SMTP in one variable. https://django-environ.readthedocs.io/en/latest/types.html#environ-env-email-url
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default=str(VAR_DIR / "mail"))  # for the filebased backend
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="taskhub@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # Django logs an oversized request as an ERROR of these security loggers; taskhub.errors
    # answers it with a 413 and a warning instead (a client's mistake, not a server fault).
    # https://docs.djangoproject.com/en/5.2/ref/logging/#django-security
    "loggers": {
        f"django.security.{name}": {"level": "CRITICAL"} for name in ("RequestDataTooBig", "TooManyFieldsSent")
    },
}

# --- REST framework ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.StrictJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["taskhub.parsers.SafeJSONParser"],
    "DEFAULT_FILTER_BACKENDS": [
        "taskhub.filters.FilterBackend",  # django-filter's, skipped when no parameter but paging's
        "rest_framework.filters.SearchFilter",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_SCHEMA_CLASS": "taskhub.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "taskhub.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    # Which address a throttle counts: 0 ignores X-Forwarded-For (a client could set a new one per
    # request); behind N trusted proxies, the address the N-th proxy saw.
    # https://www.django-rest-framework.org/api-guide/throttling/#how-clients-are-identified
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    # https://www.django-rest-framework.org/api-guide/throttling/#setting-the-throttling-policy
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", default="60/min"),
        "user": env.str("THROTTLE_USER", default="1200/min"),
        "login": env.str("THROTTLE_LOGIN", default="10/min"),
        "register": env.str("THROTTLE_REGISTER", default="10/hour"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

# Throttle counters live in the cache; with several web processes it must be shared (Redis).
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://taskhub")}

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    # https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html#rotate-refresh-tokens
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
    # Tokens carry a hash of the password: changing it invalidates access tokens at once too.
    # https://django-rest-framework-simplejwt.readthedocs.io/en/latest/settings.html#check-revoke-token
    "CHECK_REVOKE_TOKEN": True,
}

REGISTRATION_OPEN = env.bool("REGISTRATION_OPEN", default=True)

SPECTACULAR_SETTINGS = {
    "TITLE": "taskhub API",
    "DESCRIPTION": "Background jobs you can see and steer: submit, follow, cancel and retry jobs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI and ReDoc assets are served from this server, not a CDN.
    # https://drf-spectacular.readthedocs.io/en/latest/settings.html#self-contained-ui-installation
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The live progress streams are plain async views: a hook documents them (jobs/streams/openapi.py).
    # https://drf-spectacular.readthedocs.io/en/latest/customization.html#step-7-preprocessing-hooks
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "jobs.streams.openapi.add_stream_paths",
    ],
}

# --- Celery -----------------------------------------------------------------------------------
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
BROKER_DIR = VAR_DIR / "broker"
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost//")
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
# Celery's Django fixup closes every database connection before and after every task unless this
# is set (and with a connection pool in a prefork worker it closes the whole pool): a new PostgreSQL
# connection per job. taskhub instead recycles connections per task as Django does per request
# (taskhub/celery.py). https://github.com/celery/celery/blob/main/celery/fixups/django.py
CELERY_DB_REUSE_MAX = 2**31
# django-celery-beat's DatabaseScheduler, extended so that a schedule of a catalog task fires a
# tracked job (jobs/schedules/scheduler.py). https://django-celery-beat.readthedocs.io/en/latest/
CELERY_BEAT_SCHEDULER = "jobs.schedules.scheduler:JobScheduler"

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
JOB_SWEEP_INTERVAL = env.float("JOB_SWEEP_INTERVAL", default=10.0)
# Whom users who are not staff may notify (send_notification) besides themselves: addresses, or @domain.
# Per-user quotas (429 over either): active = pending or running jobs; per minute = new jobs in any
# 60 seconds (a bulk request counts each job). 0 = no limit; a user's own limits (admin) override these.
JOB_QUOTA_MAX_ACTIVE = env.int("JOB_QUOTA_MAX_ACTIVE", default=1000)
JOB_QUOTA_PER_MINUTE = env.int("JOB_QUOTA_PER_MINUTE", default=1000)
JOB_QUOTA_EXEMPT_STAFF = env.bool("JOB_QUOTA_EXEMPT_STAFF", default=True)
JOB_NOTIFY_ALLOWED_RECIPIENTS = env.list("JOB_NOTIFY_ALLOWED_RECIPIENTS", default=[])

# Django's standard task API (django.tasks; on Django 5.2 the django-tasks backport): @task
# functions run as tracked jobs (jobs/tasks/django_backend.py, README "Using Django's task API").
# QUEUES: the queue_name values tasks may use (taskhub's queues); OWNER: the service account
# (created on first use) owning jobs enqueued outside `owned_by(user)`; MAX_RETRIES: automatic retries.
# https://docs.djangoproject.com/en/6.0/topics/tasks/
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

# --- Live progress (server-sent event streams, jobs/live.py, jobs/streams/) -----------------
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

if CELERY_BROKER_URL.startswith("filesystem://"):
    # https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.filesystem.html
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
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
        }
    # RabbitMQ (amqp://) has neither: an unacknowledged message goes back to its queue when the
    # worker's connection closes (raise RabbitMQ's consumer_timeout above JOB_MAX_TIME_LIMIT), and a
    # worker serves its queues in no particular order, so high_priority needs a worker of its own for
    # urgent jobs to overtake a backlog (docs/RELIABILITY.md, "Priorities on RabbitMQ").

# Housekeeping has a queue and a worker of its own (the Procfile's maintenance process): it must
# run while user jobs occupy every other worker process. Expired runs are dropped, not piled up.
CELERY_TASK_ROUTES = {"jobs.tasks.maintenance_tasks.*": {"queue": "maintenance"}}
CELERY_BEAT_SCHEDULE = {
    "taskhub-dispatch-jobs": {
        "task": "jobs.tasks.maintenance_tasks.dispatch_jobs",
        "schedule": JOB_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
    },
    "taskhub-recover-jobs": {
        "task": "jobs.tasks.maintenance_tasks.recover_jobs",
        "schedule": JOB_SWEEP_INTERVAL,
        "options": {"queue": "maintenance", "expires": JOB_SWEEP_INTERVAL * 3},
    },
    # Metrics' totals (jobs/services/metrics.py) also advance at each scrape; this keeps them current
    # between scrapes and catches up after a pause. Every minute: each pass reads only new rows.
    "taskhub-rollup-metrics": {
        "task": "jobs.tasks.maintenance_tasks.rollup_metrics",
        "schedule": 60.0,
        "options": {"queue": "maintenance", "expires": 180},
    },
    # Retention (JOB_RETENTION_* below, CELERY_RESULT_EXPIRES): deletes finished jobs and result rows.
    "taskhub-purge-jobs": {
        "task": "jobs.tasks.maintenance_tasks.purge_jobs",
        # Daily at a quiet hour (CELERY_TIMEZONE); a run missed by 12 hours is dropped, the next one catches up.
        "schedule": crontab(minute=30, hour=3),
        "options": {"queue": "maintenance", "expires": 12 * 3600},
    },
}

# --- Metrics (GET /metrics, jobs/observability/views.py) ----------------------------------------------
# Prometheus scrapes /metrics with `Authorization: Bearer <METRICS_TOKEN>`; staff members may also
# read it in a logged-in browser session. Empty (the default): staff sessions only.
# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#scrape_config
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Retention ----------------------------------------------------------------------------------
# How long finished jobs (and their timelines) are kept after they finished, per status: a whole
# number and a unit (s, m, h, d, w), e.g. 30d or 12h; empty or 0 keeps them forever. Beat's
# daily purge_jobs task and `manage.py cleanup_jobs` (without --older-than) delete the older ones,
# JOB_RETENTION_BATCH_SIZE rows per short transaction.
JOB_RETENTION_SUCCEEDED = env.str("JOB_RETENTION_SUCCEEDED", default="30d")
JOB_RETENTION_FAILED = env.str("JOB_RETENTION_FAILED", default="90d")
JOB_RETENTION_REVOKED = env.str("JOB_RETENTION_REVOKED", default="30d")
JOB_RETENTION_BATCH_SIZE = env.int("JOB_RETENTION_BATCH_SIZE", default=1000)
# Celery's result rows (django-celery-results) are deleted this many seconds after they were
# written (0: kept forever), by the same task and by Celery's own daily celery.backend_cleanup.
# https://docs.celeryq.dev/en/stable/userguide/configuration.html#result-expires
CELERY_RESULT_EXPIRES = timedelta(seconds=env.int("CELERY_RESULT_EXPIRES", default=24 * 3600))
