"""The job rows' queryset: pages, counts and the date hierarchy that read running jobs apart (migration 0026)."""

from django.db import connections, models
from django.db.models import Max, Min

from .statuses import NOT_RUNNING, RUNNING


class JobQuerySet(models.QuerySet):
    """Jobs. ``running_apart()`` marks a queryset whose pages, count, minimums and maximums and
    truncated times (the admin's date hierarchy) read the jobs that are not running and the running
    ones apart: a page in two branches of one statement (``UNION ALL``, each branch limited to the
    page's end and in the page's order, merged by PostgreSQL's Merge Append). The first branch reads
    an index in the list's order (job_owner_created or job_created), the second job_running and sorts
    its few rows (at most the workers' slots)."""

    _running_apart = False

    def running_apart(self) -> "JobQuerySet":
        clone = self._chain()
        clone._running_apart = True
        return clone

    def _clone(self):
        clone = super()._clone()
        clone._running_apart = self._running_apart
        return clone

    def _ordering(self) -> tuple:
        return tuple(self.query.order_by or (self.model._meta.ordering if self.query.default_ordering else ()))

    def _branches(self) -> tuple["JobQuerySet", "JobQuerySet"] | None:
        """The two branches, or None when this queryset is read as it is: not marked, already a
        combination, sliced or evaluated, or on a database whose combined statements take no limited
        branches (SQLite, the embedded default: its lists are small)."""
        if not self._running_apart or self.query.combinator or self.query.is_sliced or self._result_cache is not None:
            return None
        if not connections[self.db].features.supports_slicing_ordering_in_compound:
            return None
        whole = self._chain()
        whole._running_apart = False
        return whole.filter(NOT_RUNNING), whole.filter(RUNNING)

    def __getitem__(self, k):
        # A page in an order the combined statement can name: columns it selects, by their names (not a
        # related field's; ``pk`` by its column's, as the admin's ordering ends).
        pk = self.model._meta.pk.attname
        ordering = tuple(
            term.replace("pk", pk) if isinstance(term, str) and term.lstrip("-") == "pk" else term
            for term in self._ordering()
        )
        named = [term.lstrip("-") for term in ordering if isinstance(term, str)]
        columns = set(self._fields) if self._fields else {field.attname for field in self.model._meta.concrete_fields}
        in_order = ordering and len(named) == len(ordering) and columns.issuperset(named)
        branches = self._branches() if in_order else None
        if branches is None or (isinstance(k, int) and k < 0):
            return super().__getitem__(k)
        if isinstance(k, int):
            found = list(self[k : k + 1])
            if not found:
                raise IndexError("list index out of range")
            return found[0]
        if not isinstance(k, slice) or k.stop is None or k.step is not None:
            return super().__getitem__(k)
        apart, running = (branch[: k.stop] for branch in branches)
        return apart.union(running, all=True).order_by(*ordering)[k.start or 0 : k.stop]

    def count(self) -> int:
        branches = self._branches()
        if branches is None:
            return super().count()
        apart, running = (branch.order_by() for branch in branches)
        return apart.union(running, all=True).count()

    def aggregate(self, *args, **kwargs):
        """Minimums and maximums (the admin's date hierarchy: the first and last job) of each branch,
        combined; any other aggregate as it is."""
        branches = self._branches()
        if branches is None or args or not all(type(value) in (Min, Max) for value in kwargs.values()):
            return super().aggregate(*args, **kwargs)
        parts = [branch.aggregate(**kwargs) for branch in branches]
        combined = {}
        for name, value in kwargs.items():
            found = [part[name] for part in parts if part[name] is not None]
            combined[name] = (min if type(value) is Min else max)(found) if found else None
        return combined

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        """The distinct truncated times of each branch (the admin's date hierarchy), in one statement."""
        branches = self._branches()
        if branches is None:
            return super().datetimes(field_name, kind, order, tzinfo)
        apart, running = (branch.datetimes(field_name, kind, order, tzinfo) for branch in branches)
        return apart.union(running).order_by(f"{'-' if order == 'DESC' else ''}datetimefield")
