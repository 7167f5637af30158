"""Settings of the peers' tiny Django project, as each peer's docs set it up, nothing else.

PEER (celery_results, django_q2 or django_tasks_db) picks the installed apps; PEER_DATABASE_URL is
the peer's own PostgreSQL database, PEER_BROKER_URL the Redis db of the Celery peer.
"""

import os
from urllib.parse import unquote, urlsplit

PEER = os.environ["PEER"]
_db = urlsplit(os.environ["PEER_DATABASE_URL"])

SECRET_KEY = "bench-peers-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz"
DEBUG = False
ALLOWED_HOSTS: list[str] = []
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": unquote(_db.username or ""),
        "PASSWORD": unquote(_db.password or ""),
        "HOST": _db.hostname or "",
        "PORT": str(_db.port or ""),
    }
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
}

if PEER == "celery_results":
    # django-celery-results' docs: the django-db result backend; track_started and result_extended on
    # (what a team that wants the task's state and arguments in its database turns on). acks_late as
    # the plain Celery baseline (bench/plain_celery.py) and taskhub run.
    INSTALLED_APPS = ["django_celery_results"]
    CELERY_BROKER_URL = os.environ["PEER_BROKER_URL"]
    CELERY_RESULT_BACKEND = "django-db"
    CELERY_TASK_TRACK_STARTED = True
    CELERY_RESULT_EXTENDED = True
    CELERY_TASK_ACKS_LATE = True
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
elif PEER == "django_q2":
    # django-q2's docs: the ORM broker (orm = the database alias), 2 workers. save_limit 0 keeps every
    # successful task (the default, 250, would delete all but the last 250: the run could not be counted).
    INSTALLED_APPS = ["django_q"]
    Q_CLUSTER = {"name": "bench", "workers": 2, "orm": "default", "save_limit": 0, "timeout": 60, "retry": 120}
elif PEER == "django_tasks_db":
    # django-tasks-db's README: the app and its DatabaseBackend; on Django 5.2 through the django-tasks
    # backport (the package's `compat` extra).
    INSTALLED_APPS = ["django_tasks", "django_tasks_db"]
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default"]}}
else:
    raise RuntimeError(f"unknown PEER {PEER!r}")
