"""The jobs API's serializers, one module per concern, re-exported here (``from jobs.serializers import
JobSerializer``): a job in answers (``job``), the bodies that create or retry one (``requests``), its
timeline (``events``), the task catalog (``catalog``)."""

from .catalog import CatalogEntrySerializer
from .events import JobEventSerializer
from .job import DEDUPE_OUTCOMES, LEFT_OUT, TRUNCATED, JobCreatedSerializer, JobSerializer
from .requests import FirstErrorListField, JobBulkCreateSerializer, JobCreateSerializer, JobRetrySerializer

__all__ = [
    "DEDUPE_OUTCOMES",
    "LEFT_OUT",
    "TRUNCATED",
    "CatalogEntrySerializer",
    "FirstErrorListField",
    "JobBulkCreateSerializer",
    "JobCreateSerializer",
    "JobCreatedSerializer",
    "JobEventSerializer",
    "JobRetrySerializer",
    "JobSerializer",
]
