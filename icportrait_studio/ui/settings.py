"""Remembered preferences: recent files, window geometry, folders, view toggles.

A small JSON file in the user config dir (the same folder as the crash-recovery autosave) rather than
QSettings: it is readable, easy to reset by deleting one file, and tests point it at a temp folder with
ICPORTRAIT_CONFIG_DIR. Writes are atomic, so a crash never leaves a truncated settings file.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from pathlib import Path
from typing import Any

from icportrait_studio.core.project import config_dir

MAX_RECENT = 10


class Settings:
    """Dictionary-backed settings; ``save()`` persists them (the app calls it on change and at exit)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config_dir() / "settings.json"
        self._data: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            if isinstance(loaded, dict):
                self._data = loaded

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def set(self, key: str, value: Any) -> None:
        self._data[key] = value

    def save(self) -> None:
        from icportrait_studio.imaging.atomic import atomic_write_text  # lazy: the imaging package loads OpenCV

        with contextlib.suppress(Exception):  # preferences are never worth an error dialog
            atomic_write_text(self.path, json.dumps(self._data, indent=2))

    # --- recent files -------------------------------------------------------------------------------

    def recent_files(self) -> list[str]:
        """Most recent first; entries whose file has gone are dropped."""
        return [f for f in self._paths("recent_files") if os.path.exists(f)][:MAX_RECENT]

    def add_recent(self, path: str, encoding: str = "auto") -> None:
        """Put ``path`` first; ``encoding`` is how it was opened ("linear" is remembered, so reopening it
        from the list reads it the same way)."""
        path = os.path.abspath(path)
        files = [f for f in self.recent_files() if f != path]
        self._data["recent_files"] = [path, *files][:MAX_RECENT]
        kept = set(self._data["recent_files"])
        linear = [f for f in self._paths("recent_linear") if f in kept and f != path]
        self._data["recent_linear"] = [path, *linear] if encoding == "linear" else linear
        self.save()

    def recent_encoding(self, path: str) -> str:
        """How a recent file was opened: "linear" or "auto"."""
        return "linear" if os.path.abspath(path) in self._paths("recent_linear") else "auto"

    def _paths(self, key: str) -> list[str]:
        """A list of paths as saved; whatever else a hand-edited file holds there reads as none."""
        value = self._data.get(key)
        return [f for f in value if isinstance(f, str)] if isinstance(value, list) else []

    def clear_recent(self) -> None:
        self._data["recent_files"] = []
        self._data["recent_linear"] = []
        self.save()

    # --- binary blobs (window geometry / dock state) -----------------------------------------------

    def set_bytes(self, key: str, data: bytes) -> None:
        self._data[key] = base64.b64encode(bytes(data)).decode("ascii")

    def get_bytes(self, key: str) -> bytes | None:
        value = self._data.get(key)
        if not isinstance(value, str):
            return None
        try:
            return base64.b64decode(value)
        except ValueError:
            return None

    # --- folders -------------------------------------------------------------------------------------

    def folder(self, key: str) -> str:
        """A remembered folder that still exists, else the home folder."""
        value = self._data.get(key)
        return value if isinstance(value, str) and os.path.isdir(value) else str(Path.home())

    def set_folder_from(self, key: str, file_path: str) -> None:
        self._data[key] = os.path.dirname(os.path.abspath(file_path))
        self.save()
