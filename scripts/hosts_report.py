"""Render the many-hosts bed's records (one JSON file per scenario and broker, written by
taskhub/testing/hosts/) as the table of docs/RELIABILITY.md; print it and write it next to them
as report.md."""

import json
import sys
from pathlib import Path

HEADER = (
    "| scenario | broker | jobs | lost | ran twice | recovery (s) | bound (s) | late writes refused "
    "| rows they changed | note |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
)


def main(folder: Path) -> None:
    records = sorted((json.loads(p.read_text()) for p in folder.glob("*.json")), key=lambda r: r["scenario"])
    if not records:
        print(f"No many-hosts records in {folder}.")
        return
    lines = [HEADER]
    for r in records:
        twice = f"{r['twice']}" + (f" (≤ {r['twice_allowed']} allowed)" if r["twice_allowed"] else "")
        fenced = "" if r["fenced"] is None else str(r["fenced"])
        changed = "" if r["late_changes"] is None else str(r["late_changes"])
        lines.append(
            f"| {r['scenario'].replace('_', ' ')} | {r['broker']} | {r['jobs']} | {r['lost']} | {twice} "
            f"| {r['recovery_s']:.1f} | {r['bound_s']:g} | {fenced} | {changed} | {r['note']} |"
        )
    commands = "\n".join(f"- {r['scenario'].replace('_', ' ')}: `{r['command']}`" for r in records)
    report = "\n".join(lines) + "\n\nReproduce one row:\n\n" + commands + "\n"
    (folder / "report.md").write_text(report)
    print(report)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
