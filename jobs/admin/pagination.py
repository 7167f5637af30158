"""The job list's paginator: the count of a large, unfiltered jobs table is an estimate."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property

from .. import selectors

# Above this many rows an unfiltered job list shows PostgreSQL's row estimate, not a COUNT(*).
ESTIMATE_COUNT_ABOVE = 100_000


class JobPaginator(Paginator):
    """Counting every row of a large jobs table is slow on PostgreSQL: once the table is
    large, the unfiltered list shows the planner's estimate instead (``estimated`` then says so)."""

    estimated = False

    @cached_property
    def count(self) -> int:
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            estimate = selectors.job_count_estimate()
            if estimate is not None and estimate > ESTIMATE_COUNT_ABOVE:
                self.estimated = True
                return estimate
        return super().count
