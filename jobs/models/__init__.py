"""taskhub's models, one module per sub-domain, re-exported here: ``from jobs.models import Job``
and the migrations' references stay as they were (NetBox's ``core/models/`` does the same).

- ``jobs``: the job row, its statuses and priorities, its timeline.
- ``schedules``: who a periodic job runs as (beside django-celery-beat's PeriodicTask).
- ``observability``: worker processes seen alive, metric totals, the per-minute stats rollup.
- ``queues``: queue control: pauses, rate limits and their audit trail.
- ``workflows``: DAGs of jobs, their edges.
"""

from .jobs import (  # noqa: F401
    ACTIVE,
    ACTIVE_STATUSES,
    DEAD_JOBS,
    MANUAL_RETRY_STATUSES,
    NOT_RUNNING,
    PRIORITY_QUEUES,
    RETRY_EVENT_KINDS,
    TERMINAL_STATUSES,
    UNIQUE_HELD_WHILE,
    Job,
    JobEvent,
    JobEventKind,
    JobPriority,
    JobStatus,
    UniquePolicy,
    either_side_of_running,
    status_in,
    unique_policies_holding,
)
from .observability import (  # noqa: F401
    METRIC_BUCKETS,
    STATS_RUN_BOUNDS,
    STATS_RUN_FIELDS,
    JobStatsMinute,
    MetricCursor,
    MetricSeen,
    MetricTotal,
    WorkerHeartbeat,
    run_bucket_field,
)
from .queues import (  # noqa: F401
    RATE_LIMIT_MAX,
    RATE_PERIOD_MAX,
    QueueControl,
    QueueControlAction,
    QueueControlChange,
    QueueControlSource,
    RateLimit,
    RateLimitScope,
    RateLimitSlot,
)
from .schedules import (  # noqa: F401
    JobSchedule,
)
from .workflows import (  # noqa: F401
    Workflow,
    WorkflowDependency,
    WorkflowOnFailure,
    WorkflowStatus,
)
