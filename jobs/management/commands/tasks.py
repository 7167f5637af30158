"""manage.py tasks [NAME] [--json]: the task catalog, as GET /api/v1/task-catalog/ shows it."""

from __future__ import annotations

from jobs.catalog import CatalogEntry, catalog
from jobs.management.cli import OperatorCommand, as_json, task_entry
from jobs.parameters import describe_schema
from jobs.serializers import CatalogEntrySerializer


class Command(OperatorCommand):
    help = "The tasks a job may run: parameters (types, defaults, limits), priority, queue, limits, retries."
    examples = ("manage.py tasks", "manage.py tasks long_running_task --json")

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", metavar="NAME", help="One task, by name or alias.")
        parser.add_argument("--json", action="store_true", help="The API's JSON (GET /api/v1/task-catalog/).")

    def handle(self, *args, name: str | None, **options):
        entries = catalog.entries() if name is None else [task_entry("NAME", name)]
        if options["json"]:
            described = [entry.describe() for entry in entries]
            data = (
                CatalogEntrySerializer(described, many=True).data
                if name is None
                else (CatalogEntrySerializer(described[0]).data)
            )
            self.stdout.write(as_json(data))
            return
        self.stdout.write("\n\n".join(describe(entry) for entry in entries))


def describe(entry: CatalogEntry) -> str:
    info = entry.describe()
    retry = "none"
    if info["max_retries"]:
        retry = (
            f"at most {info['max_retries']} (backoff {info['retry_backoff']:g}s, "
            f"at most {info['retry_backoff_max']:g}s apart)"
        )
    soft = f"{info['soft_time_limit']}s" if info["soft_time_limit"] else "-"
    lines = [
        info["name"],
        f"  aliases      {', '.join(info['aliases']) or '-'}",
        f"  description  {first_paragraph(info['description'])}",
        f"  priority     {info['default_priority']} (queue {info['queue']})",
        f"  time limits  soft {soft}, hard {info['time_limit']}s",
        f"  retries      {retry}",
        "  cancellable  " + ("yes" if info["cancellable"] else "no (terminated at its next heartbeat after a cancel)"),
    ]
    if info["staff_only"]:
        lines.append("  staff only   yes")
    lines.append(
        f"  package      {info['package']}" + (f" {info['package_version']}" if info["package_version"] else "")
    )
    schema = info["parameters"]
    properties = schema.get("properties", {})
    lines.append("  parameters" + ("" if properties else "  none"))
    width = max((len(name) for name in properties), default=0)
    for name, spec in properties.items():
        lines.append(f"    {name:<{width}}  {describe_schema(spec, required=name in schema.get('required', []))}")
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        lines.append(f"    (other keyword arguments: {describe_schema(extra)})")
    return "\n".join(lines)


def first_paragraph(text: str) -> str:
    """A docstring's first paragraph on one line."""
    return " ".join(text.split("\n\n")[0].split()) or "-"
