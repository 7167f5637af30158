#!/usr/bin/env python
"""What one API request costs in-process, without HTTP or other clients: a list page, a job's
detail, a create and the serializer alone, timed round-robin (``common.interleaved``).

    .venv/bin/python bench/request_cost.py [--quick]

On a shared machine the HTTP benchmark's figures move with everyone else's load; these move
much less, so they are what to compare between two commits (run the script of one commit in a
``git worktree`` of the other). 200 jobs of one non-staff owner; DRF's APIClient with
``force_authenticate`` through the whole stack (middleware, routing, throttles, filters, cursor
pagination, serializer, JSON). A create is the whole of it: the quota check, the row and its
timeline line, the commit, the message published to Redis (nobody consumes it) and the sent stamp.
Own database taskhub_bench_request, own Redis db 4.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import _common as common

ENV = common.configure(database="taskhub_bench_request", redis_db=4)


def main() -> int:
    args = common.parse_args(__doc__)
    rounds = 40 if args.quick else 200
    with common.bench_environment(ENV):
        from django.test import RequestFactory
        from rest_framework import throttling
        from rest_framework.test import APIClient

        from jobs import selectors
        from jobs.models import Job
        from jobs.serializers import JobSerializer

        # Throttles stay in the stack but never refuse (the run asks thousands of times a minute).
        for throttle in (throttling.UserRateThrottle, throttling.AnonRateThrottle):
            throttle.rate = "1000000/min"
            throttle.num_requests, throttle.duration = 1_000_000, 60
        user = common.make_user("request-cost")
        Job.objects.bulk_create(
            Job(
                owner=user,
                name=f"job {i}",
                celery_task_name="jobs.tasks.common_tasks.long_running_task",
                queue="default",
                args=[i],
                kwargs={"seconds": 1, "customer": f"c{i}"},
            )
            for i in range(200)
        )
        client = APIClient()
        client.force_authenticate(user)
        job_id = Job.objects.values_list("id", flat=True).first()
        request = RequestFactory().get("/")
        request.user = user
        page = list(selectors.job_list(user=user)[:50])
        serializer = JobSerializer(context={"request": request})

        def get(url):
            def call():
                response = client.get(url)
                assert response.status_code == 200, response.content
                return response

            return call

        def create():
            response = client.post(
                "/api/v1/jobs/", {"celery_task_name": "long_running_task", "args": [0]}, format="json"
            )
            assert response.status_code == 201, response.content
            return response

        functions = {
            "POST /api/v1/jobs/": create,
            "GET /api/v1/jobs/?page_size=50": get("/api/v1/jobs/?page_size=50"),
            "GET /api/v1/jobs/{id}/": get(f"/api/v1/jobs/{job_id}/"),
            "JobSerializer over 50 jobs": lambda: [serializer.to_representation(job) for job in page],
        }
        # This process's CPU per call beside the wall time: on a busy machine the wall time includes
        # waiting for a core, the CPU time much less (PostgreSQL's and Redis's work is not in it).
        cpu: dict[str, list[float]] = {name: [] for name in functions}

        def on_cpu(name, function):
            def call():
                started = time.process_time()
                function()
                cpu[name].append(time.process_time() - started)

            return call

        warmup = 5
        timings = common.interleaved(
            {name: on_cpu(name, function) for name, function in functions.items()}, rounds, warmup=warmup
        )
        common.print_table(
            f"one request in-process, {rounds} rounds round-robin",
            ["request", "median ms", "p90 ms", "CPU median ms"],
            [
                (name, common.median_ms(t), common.p90_ms(t), common.median_ms(cpu[name][warmup:]))
                for name, t in timings.items()
            ],
        )
        medians = {name: common.median_ms(t) for name, t in timings.items()}
        print(
            f"ratios: list page {medians['GET /api/v1/jobs/?page_size=50']:.2f} ms, detail "
            f"{medians['GET /api/v1/jobs/{id}/']:.2f} ms, create {medians['POST /api/v1/jobs/']:.2f} ms, "
            f"serializer over 50 jobs "
            f"{medians['JobSerializer over 50 jobs']:.2f} ms (in-process medians)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
