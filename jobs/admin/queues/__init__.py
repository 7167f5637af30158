"""Queue control in the admin, one module per page: ``controls`` (the queues: list, a queue's page
with Pause / Resume and a reason), ``rate_limits`` (rate limits of queues and tasks), ``changes``
(the audit trail), and ``state`` (a queue's state line, live figures and audit trail in words, and
the JSON view the list and a queue's page poll). Importing them registers the admins.
"""

from . import changes, controls, rate_limits  # noqa: F401
