"""The many-hosts bed's API client (scenarios 3 and 4): a script on the client host that creates a job
and probes readiness every second, each answer a JSON line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import TYPE_CHECKING

from taskhub.testing.processes import BASE_DIR

if TYPE_CHECKING:
    from taskhub.testing.hosts.bed import Bed

TOKEN_SCRIPT = """
from accounts.models import User
from rest_framework_simplejwt.tokens import RefreshToken
user, _ = User.objects.update_or_create(username="bed-client", defaults={"max_running_jobs": 0})
print(RefreshToken.for_user(user).access_token)
"""

# An API client on the client host: every second a create (POST /api/v1/jobs/) and a readiness probe
# (GET /readyz), each answer a JSON line (when asked, status, error code or job id, seconds taken).
CLIENT_SCRIPT = """
import json, os, sys, time, urllib.error, urllib.request
base, token, until = os.environ["BED_API"], os.environ["BED_TOKEN"], time.time() + float(os.environ["BED_SECONDS"])
body = json.dumps({"celery_task_name": "long_running_task", "args": [1], "max_retries": 0}).encode()
def call(kind, request):
    started = time.time()
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, data = exc.code, exc.read()
    except OSError as exc:
        status, data = 0, json.dumps({"code": type(exc).__name__, "message": str(exc)}).encode()
    try:
        data = json.loads(data)
    except ValueError:
        data = {"code": "not_json", "message": data[:200].decode(errors="replace")}
    print(json.dumps({"kind": kind, "at": started, "took": round(time.time() - started, 2), "status": status,
                      "code": data.get("code"), "id": data.get("id"), "message": data.get("message"),
                      "checks": data.get("checks")}), flush=True)
while time.time() < until:
    started = time.time()
    call("create", urllib.request.Request(f"{base}/api/v1/jobs/", data=body, method="POST", headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"}))
    call("ready", urllib.request.Request(f"{base}/readyz"))
    time.sleep(max(0.0, 1.0 - (time.time() - started)))
"""


class Client:
    """CLIENT_SCRIPT running on the client host for ``seconds``; ``answers()`` reads what it got."""

    def __init__(self, bed: Bed, seconds: float) -> None:
        token = bed.manage("shell", "-c", TOKEN_SCRIPT).strip().splitlines()[-1]
        self.out = bed.dir / "client.jsonl"
        env = bed.env(BED_API=f"http://{bed.address('api')}:8000", BED_TOKEN=token, BED_SECONDS=str(seconds))
        with self.out.open("wb") as handle:
            self.process = subprocess.Popen(
                bed.on_host("client", [sys.executable, "-c", CLIENT_SCRIPT]),
                cwd=BASE_DIR,
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        bed.processes.append(self)  # stopped with the bed

    host, kind, name = "client", "client", "client"

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def answers(self) -> list[dict]:
        return [json.loads(line) for line in self.output().splitlines() if line.startswith("{")]

    def wait(self, timeout: float) -> list[dict]:
        self.process.wait(timeout=timeout)
        return self.answers()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
