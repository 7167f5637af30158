"""The Procfile's web process (uvicorn on ``taskhub.asgi``) on a free port, and a small server-sent
events client for its streams.

Used by the stream tests, the schemathesis run and bench/stream_latency.py; nothing here is imported
by the running app.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from taskhub.testing.processes import BASE_DIR, free_port, wait_for

_VARIABLE = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


def procfile_web_options(env: dict[str, str] | None = None) -> list[str]:
    """The Procfile's uvicorn options (protocol, loop, lifespan, trusted proxies), less host, port and
    workers: one process here, so that its threads can be counted. ``${NAME:-default}`` is expanded
    from ``env`` (this process's environment by default), as the shell of the Procfile's line does."""
    env = os.environ if env is None else env
    line = next(line for line in (BASE_DIR / "Procfile").read_text().splitlines() if line.startswith("web:"))
    words = shlex.split(line.split("taskhub.asgi:application", 1)[1])
    options, skip = [], False
    for word in words:
        if skip or word in ("--host", "--port", "--workers"):
            skip = not skip
            continue
        options.append(_VARIABLE.sub(lambda match: env.get(match[1]) or (match[2] or ""), word))
    return options


class AsgiServer:
    """``uvicorn taskhub.asgi:application --lifespan off`` (the Procfile's web line) on a free port.

    ``env`` is added to this process's environment; a None value removes the variable.
    """

    def __init__(self, *, env: dict[str, str | None]) -> None:
        self.port = free_port()
        merged = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        self.env = {name: value for name, value in merged.items() if value is not None}
        self.log = Path(tempfile.mkstemp(prefix="taskhub-uvicorn-", suffix=".log")[1])
        self.process: subprocess.Popen | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> AsgiServer:
        args = [sys.executable, "-m", "uvicorn", "taskhub.asgi:application", "--host", "127.0.0.1"]
        args += ["--port", str(self.port), *procfile_web_options(self.env)]
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(args, cwd=BASE_DIR, env=self.env, stdout=handle, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=30, message=f"uvicorn on port {self.port}")
        return self

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"uvicorn exited:\n{self.output()[-3000:]}")
        try:
            return self.request("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def threads(self) -> int:
        status = Path(f"/proc/{self.pid}/status").read_text()
        return int(next(line for line in status.splitlines() if line.startswith("Threads:")).split()[1])

    def request(self, method: str, path: str, *, token: str | None = None, body=None) -> tuple[int, dict | list]:
        """One ordinary HTTP request; returns (status, decoded JSON body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            headers = {"Content-Type": "application/json"} if body is not None else {}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else {}
        finally:
            conn.close()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None


@dataclass
class Event:
    """One server-sent event (``kind`` "comment" for a ``:`` line such as the keep-alive)."""

    kind: str
    data: dict | None = None
    id: str | None = None
    received: float = 0.0  # time.time() when its last line arrived


class EventStream:
    """A blocking ``text/event-stream`` reader over http.client (which decodes the chunked body)."""

    def __init__(self, port: int, path: str, *, token: str | None = None, timeout: float = 20.0, **headers):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("GET", path, headers={name.replace("_", "-"): value for name, value in headers.items()})
        self.response = self.conn.getresponse()
        self.status = self.response.status
        self.content_type = self.response.getheader("Content-Type", "")

    def json(self) -> dict:
        return json.loads(self.response.read())

    def next(self) -> Event | None:
        """The next event, or None when the server closed the stream."""
        fields: dict[str, str] = {}
        while True:
            line = self.response.readline()
            if not line:
                return None
            line = line.decode().rstrip("\n")
            if line.startswith(":"):
                return Event("comment", received=time.time())
            if line == "":
                if "event" in fields or "data" in fields:
                    data = json.loads(fields["data"]) if "data" in fields else None
                    return Event(fields.get("event", "message"), data, fields.get("id"), time.time())
                continue  # e.g. the "retry:" block
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")

    def events(self):
        while (event := self.next()) is not None:
            yield event

    def close(self) -> None:
        self.conn.close()
