"""The data a job carries: its state machine, progress, outcome and timing.

Kept apart from the manager so the GUI (and tests) can type against ``Job`` and ``JobState``
without pulling in any threading code.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from icportrait_studio.errors import ICPortraitError
from icportrait_studio.pipeline.progress import CancelToken, ProgressFn

WorkFn = Callable[[ProgressFn, CancelToken], object]
"""What a job runs: it reports through the ``ProgressFn`` and polls the ``CancelToken`` between steps."""


class JobState(str, Enum):
    """Where a job is in its life; a ``str`` enum so stats and logs serialise to JSON as they are."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        """True for the three end states: nothing changes a job after it reaches one."""
        return self in _TERMINAL


_TERMINAL = frozenset({JobState.DONE, JobState.FAILED, JobState.CANCELLED})


@dataclass(eq=False)
class Job:
    """One unit of pipeline work and everything the UI needs to show about it.

    The manager mutates the instance it returns from ``submit`` under its lock; ``on_update`` and
    ``get``/``jobs``/``wait`` hand out shallow copies (``snapshot``) so a receiver on another thread
    sees one consistent state. ``eq=False``: two jobs are the same only if they are the same object.
    """

    id: int
    work: WorkFn | None  # dropped (set to None) once the job ends, so captured images are freed early
    label: str = ""
    priority: int = 0  # higher runs first; FIFO among equals
    replace_key: str | None = None
    state: JobState = JobState.QUEUED
    progress: float = 0.0  # 0..1
    stage: str = ""
    preview: object | None = None  # the latest preview a backend sent; cleared when the job ends
    result: object | None = None  # dropped for old jobs in the history (see JobManager keep_results)
    error: str | None = None  # a message for a person
    traceback: str | None = None  # the full traceback text, for logs
    created: float = field(default_factory=time.monotonic)
    started: float | None = None
    finished: float | None = None
    token: CancelToken = field(default_factory=CancelToken, repr=False)
    revision: int = 0  # bumped on every change: lets a consumer drop a snapshot older than one it has shown
    # Manager bookkeeping, not part of the public surface.
    _seq: int = field(default=0, init=False, repr=False)
    _last_emit: float = field(default=float("-inf"), init=False, repr=False)
    _settled: bool = field(default=False, init=False, repr=False)

    @property
    def done(self) -> bool:
        """True once the job is DONE, FAILED or CANCELLED."""
        return self.state.terminal

    @property
    def cancel_requested(self) -> bool:
        """True when a cancel was signalled; a running job stays RUNNING until its work notices."""
        return self.token.cancelled

    @property
    def duration(self) -> float | None:
        """Seconds spent running (so far, while it runs); None if it never started."""
        if self.started is None:
            return None
        end = self.finished if self.finished is not None else time.monotonic()
        return end - self.started

    def snapshot(self) -> Job:
        """A shallow copy without ``work``: safe to keep or pass to another thread, and it never
        keeps the work's closure (and the images it captured) alive."""
        snap = copy.copy(self)
        snap.work = None
        return snap


def describe_error(exc: BaseException) -> str:
    """The message a person sees: our own errors are written for users, anything else gets its type
    name so 'KeyError: 3' is not shown as a bare '3'."""
    if isinstance(exc, ICPortraitError):
        return str(exc) or type(exc).__name__
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
