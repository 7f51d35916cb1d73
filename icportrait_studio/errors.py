"""Error types that carry a message meant for a person, not a traceback."""

from __future__ import annotations


class ICPortraitError(Exception):
    """Base class: its message is shown to the user as it is."""


class InputError(ICPortraitError):
    """Bad user input: an unreadable file, an unknown preset, an out-of-range value."""


class CancelledError(ICPortraitError):
    """A job was cancelled cooperatively; nothing was written."""

    def __init__(self, message: str = "cancelled") -> None:
        super().__init__(message)
