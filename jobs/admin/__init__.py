"""The Django admin of jobs (autodiscovered as ``jobs.admin``), one module per concern:

- ``jobs``: ``JobAdmin``, the operator's view of every job: list, page, permissions.
- ``submit``: the add page: submit a catalog task through ``jobs.services.creation.job_create``.
- ``operations``: cancel, retry and delete, as actions and from the job page, through
  ``jobs.services.operations``.
- ``matching``: the same on everything the list's filters match, confirmed first, in batches.
- ``job_state``: a job's live state: status badge, progress bar with a true message (a held job
  says why it waits: ``job_hold``), attempt, run time, and the JSON view the list and the page poll.
- ``arrivals``: the list's "N new jobs — show" and its moving count (the ``arrivals/`` view).
- ``page``: the job page's live parts (header, fields, attempts, timeline, buttons) for that view.
- ``rendering``: read-only values shown as times (``when_html``, the admin's one time format),
  durations and JSON blocks.
- ``filters``: search by a complete job id, the queue and task list filters.
- ``pagination``: the job list's paginator (the row estimate of a large table).
- ``events``: ``JobEventAdmin``, every job's timeline in one list.
- ``queues``: queue control, a package: ``controls`` (the queues; a queue's page with Pause /
  Resume buttons and a reason), ``rate_limits``, ``changes`` (the audit trail in words), ``state``
  (a queue's state line, live figures and audit trail; the JSON view the list and page poll).
- ``schedules``: taskhub's schedule page for django-celery-beat's periodic tasks (a catalog task
  with its parameters, the timing and its preview, the recent jobs), saved through
  ``jobs.schedules.services``.
- ``workflows``: the workflows' list and a workflow's page (its DAG drawn, linked to the steps'
  job pages), Cancel and Retry actions.
"""

from django.contrib import admin
from django.utils.translation import gettext_lazy

from . import events, jobs, queues, schedules, workflows  # noqa: F401  (importing them registers the admins)

admin.site.site_header = gettext_lazy("taskhub administration")
admin.site.site_title = gettext_lazy("taskhub admin")
admin.site.index_title = gettext_lazy("Jobs, schedules and users")
# "View site": there is no site at /, only the API; its documentation is the page to go to.
admin.site.site_url = "/api/docs/"
