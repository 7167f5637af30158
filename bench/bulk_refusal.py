#!/usr/bin/env python
"""What a refused bulk request costs the web process: 500 jobs in ~1.6 MB (over JOB_BULK_MAX_BYTES,
1 MiB) or ~0.9 MB with one bad item, first or last, refused by the request's fields or by the
task's parameters; in-process (DRF's APIClient through the whole stack, as request_cost.py).

    .venv/bin/python bench/bulk_refusal.py [--quick]

A refused request writes nothing and counts against no quota, so its CPU is what a client can
make the web spend for free. Own database taskhub_bench_bulk, own Redis db 4.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_bulk", redis_db=4)


def main() -> int:
    args = common.parse_args(__doc__)
    rounds = 3 if args.quick else 10
    with common.bench_environment(ENV):
        import json

        from rest_framework.test import APIClient

        user = common.make_user("bulk-refusal")
        client = APIClient()
        client.force_authenticate(user)

        def body(count: int, values: int, bad: dict | None, where: int) -> list[dict]:
            """``count`` jobs of ``values`` small records each (~5 bytes a value), ``bad`` at ``where``."""
            good = {"celery_task_name": "process_data", "kwargs": {"records": list(range(values))}}
            jobs = [good] * count
            if bad is not None:
                jobs = [*jobs[:where], {**good, **bad}, *jobs[where + 1 :]]
            return jobs

        bad_field = {"priority": "asap"}  # refused by the request's fields
        bad_parameter = {"kwargs": {"records": [], "colour": "red"}}  # refused by the task's parameters
        bodies = {
            "1.6 MB, bad parameter, last item": body(500, 640, bad_parameter, 499),
            "1.6 MB, bad field, last item": body(500, 640, bad_field, 499),
            "0.9 MB, bad field, first item": body(500, 360, bad_field, 0),
            "0.9 MB, bad field, last item": body(500, 360, bad_field, 499),
            "0.9 MB, bad parameter, first item": body(500, 360, bad_parameter, 0),
            "0.9 MB, bad parameter, last item": body(500, 360, bad_parameter, 499),
        }
        sizes = {name: len(json.dumps({"jobs": jobs})) for name, jobs in bodies.items()}

        def post(jobs):
            def call():
                response = client.post("/api/v1/jobs/bulk/", {"jobs": jobs}, format="json")
                assert response.status_code in (400, 413), response.content[:300]
                return response

            return call

        timings = common.interleaved({name: post(jobs) for name, jobs in bodies.items()}, rounds, warmup=1)
        common.print_table(
            f"a refused bulk request in-process, {rounds} rounds round-robin ({common.load_average()})",
            ["request", "body bytes", "median ms", "p90 ms"],
            [(name, sizes[name], common.median_ms(t), common.p90_ms(t)) for name, t in timings.items()],
        )
        medians = ", ".join(f"{name} {common.median_ms(t):.0f} ms" for name, t in timings.items())
        print(f"ratios: {medians} (in-process medians)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
