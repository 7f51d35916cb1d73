"""Progress reporting and cooperative cancellation shared by backends and the job manager."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from icportrait_studio.errors import CancelledError


@dataclass(frozen=True)
class Progress:
    """One progress message: a fraction in [0, 1], a short stage name, and an optional preview."""

    fraction: float
    stage: str = ""
    preview: object | None = None  # an HxWx3 float32 array when a backend has one to show


ProgressFn = Callable[[Progress], None]


def no_progress(_: Progress) -> None:
    """A progress sink that ignores everything (the CLI's default)."""


class CancelToken:
    """A flag a worker checks between steps; ``raise_if_cancelled`` turns it into an exception."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError()
