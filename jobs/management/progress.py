"""Following a job from the command line: its states as they change, shown as a bar or as lines.

``job_states`` is the one source of states. It follows the job as its live-progress stream does
(``jobs.streams.follow.iter_job_states``: Redis pub/sub when configured, re-reading the row as the fallback),
so a bar moves as soon as the worker writes, and the displays and commands only see its states.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from accounts.models import User
from jobs import live
from jobs.models import TERMINAL_STATUSES
from jobs.selectors import job_get, job_progress
from jobs.streams.follow import iter_job_states
from taskhub.errors import NotFound


@dataclasses.dataclass(frozen=True)
class JobState:
    status: str
    progress: int
    message: str

    @classmethod
    def of(cls, state: live.JobState) -> JobState:
        return cls(status=state.status, progress=state.progress, message=state.message)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_STATUSES


class WaitTimeout(Exception):
    """The job was still active when the caller's timeout ran out; ``state`` is its last state."""

    def __init__(self, state: JobState) -> None:
        super().__init__(f"still {state.status} at {state.progress}%")
        self.state = state


def job_states(*, user: User, job_id: uuid.UUID, timeout: float | None = None) -> Iterator[JobState]:
    """The job's state each time it changes, ending with its final one (succeeded, failed, revoked).

    Each read is one autocommit query on the primary key: no transaction stays open while waiting.
    Raises NotFound if the user may not see the job or it is deleted, WaitTimeout after ``timeout``
    seconds.
    """
    job_get(user=user, job_id=job_id)  # another user's job is not found, as in the API
    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    for changed in iter_job_states(job_id, timeout):
        state = JobState.of(changed)
        if state != last:  # not only a later heartbeat
            yield state
            last = state
    if last is not None and last.finished:
        return
    if deadline is None or time.monotonic() < deadline or not job_progress(user=user, job_ids=[job_id]):
        raise NotFound(f"Job {job_id} no longer exists.")
    raise WaitTimeout(last)


class PlainLines:
    """One line per change, flushed at once: for logs, pipes and files."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __enter__(self) -> PlainLines:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def show(self, state: JobState) -> None:
        line = f"{state.status:<9} {state.progress:>3}%  {state.message}".rstrip()
        self.stream.write(line + "\n")
        self.stream.flush()


class ProgressBar:
    """rich's live progress bar with the job's status and progress message, for a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.progress = Progress(
            TextColumn("{task.fields[status]:<9}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[message]}", markup=False),
            console=Console(file=stream),
        )
        self.task = self.progress.add_task("job", total=100, status="", message="")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.progress.stop()

    def show(self, state: JobState) -> None:
        self.progress.update(self.task, completed=state.progress, status=state.status, message=state.message)


def display_for(stream: TextIO) -> PlainLines | ProgressBar:
    """A live bar on a terminal, plain lines anywhere else."""
    return ProgressBar(stream) if stream.isatty() else PlainLines(stream)
