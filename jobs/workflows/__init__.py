"""Workflows: DAGs whose every step is a tracked job. The Python API:

    from jobs.workflows import chain, chord, group, step, workflow_create

(``canvas``: the graph; ``services.workflow_create``: check it whole, then write it.) The API:
``views`` (/api/v1/workflows/).
"""

from .canvas import chain, chord, group, step  # noqa: F401
from .services import workflow_cancel, workflow_create, workflow_retry  # noqa: F401
