"""Render the fault suite's records (one JSON file per scenario and broker, written by
taskhub/testing/faults.py) as the markdown table of docs/RELIABILITY.md; print it and write it
next to them as report.md."""

import json
import sys
from pathlib import Path

HEADER = (
    "| scenario | broker | jobs | run | lost | run twice | late sends | recovery (s) | bound (s) | note |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def main(folder: Path) -> None:
    records = [json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))]
    if not records:
        print(f"No fault suite records in {folder}.")
        return
    lines = [HEADER]
    for r in sorted(records, key=lambda r: (r["scenario"], r["broker"])):
        twice = f"{r['twice']}" + (f" (≤ {r['twice_allowed']} allowed)" if r["twice_allowed"] else "")
        lines.append(
            f"| {r['scenario'].replace('_', ' ')} | {r['broker']} | {r['jobs']} | {r['run']} | {r['lost']} "
            f"| {twice} | {r['late_sends']} | {r['recovery_s']:.1f} | {r['within']:g} | {r['note']} |"
        )
    commands = "\n".join(f"- `{r['command']}`" for r in sorted(records, key=lambda r: (r["scenario"], r["broker"])))
    report = "\n".join(lines) + "\n\nReproduce one row:\n\n" + commands + "\n"
    (folder / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
