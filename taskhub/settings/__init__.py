"""taskhub settings: everything comes from the environment (12-factor), with an optional `.env`.

With nothing set, taskhub runs on its embedded default: a SQLite file and Celery's filesystem
transport under `var/`, so it works on one machine with no services installed.

`DJANGO_SETTINGS_MODULE=taskhub.settings` names this package; each module owns one concern, reads the
one `env` object of `environment` and imports the settings it builds on from the others:

- environment: `env`, BASE_DIR, VAR_DIR
- core: Django itself (secret key, hosts, apps, middleware, templates, auth, i18n, static files,
  security, e-mail, logging)
- database: DATABASES, CACHES
- plugins: task packages (TASKHUB_APPS, TASKHUB_TASK_MODULES, the taskhub.plugins entry points)
- api: the REST API (DRF, simplejwt, sign-up, drf-spectacular, /metrics)
- jobs: taskhub's own JOB_* limits, intervals, quotas and retention; Django's task API (TASKS)
- workers: Celery (every CELERY_* setting, the queues, beat's schedule)
- streams: live progress (JOB_EVENTS_*, JOB_STREAM_*)

taskhub/checks.py checks at every start that the dotted paths these settings name import.
"""

from taskhub.settings.api import *  # noqa: F403
from taskhub.settings.core import *  # noqa: F403
from taskhub.settings.database import *  # noqa: F403
from taskhub.settings.environment import *  # noqa: F403
from taskhub.settings.jobs import *  # noqa: F403
from taskhub.settings.plugins import *  # noqa: F403
from taskhub.settings.streams import *  # noqa: F403
from taskhub.settings.workers import *  # noqa: F403
