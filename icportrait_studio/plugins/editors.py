"""External editors for "Edit in…": the ones plugins describe (found on this machine) plus custom commands.

Editors are data (see ``plugins/external_editors/plugin.toml``), so the menu can be filled without
importing anything and a user can add "any command" the same way: a name, an argv with ``{file}``,
and the layered format that editor should receive.
"""

from __future__ import annotations

import glob
import json
import os
import shlex
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from icportrait_studio.errors import InputError
from icportrait_studio.plugins.manifest import Contribution
from icportrait_studio.plugins.registry import PluginRegistry, default_registry

FORMATS = ("psd", "ora", "tif")
_EXT = {"psd": ".psd", "ora": ".ora", "tif": ".tif"}


@dataclass(frozen=True)
class EditorSpec:
    """An editor ready to start: ``argv`` holds ``{file}`` where the path goes."""

    id: str
    name: str
    format: str  # 'psd', 'ora' or 'tif': what the editor is given (and must save back)
    argv: tuple[str, ...]
    note: str = ""  # how to send changes back from this editor (shown in the UI)
    plugin: str | None = None  # None for a user's custom command

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InputError(f"editor {self.name!r}: format must be one of {', '.join(FORMATS)}")
        if not self.argv:
            raise InputError(f"editor {self.name!r}: empty command")

    @property
    def extension(self) -> str:
        return _EXT[self.format]

    def command(self, file: str | os.PathLike[str]) -> list[str]:
        path = os.fspath(file)
        return [a.replace("{file}", path) for a in self.argv]

    def to_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "format": self.format, "argv": list(self.argv), "note": self.note}


def platform_key(platform: str | None = None) -> str:
    p = platform or sys.platform
    return "windows" if p.startswith("win") else "darwin" if p == "darwin" else "linux"


def resolve_contribution(contribution: Contribution, platform: str | None = None) -> EditorSpec | None:
    """The editor with its first candidate command that exists here; None when not installed."""
    commands = contribution.data.get("commands", {})
    candidates = commands.get(platform_key(platform), []) if isinstance(commands, dict) else []
    for cand in candidates:
        argv = cand.get("argv") if isinstance(cand, dict) else None
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            continue
        requires = cand.get("requires")
        match = ""
        if isinstance(requires, str):
            hits = sorted(glob.glob(requires))
            if not hits:
                continue
            match = hits[-1]  # versioned folders sort oldest first: take the newest
        elif "{match}" not in argv[0]:
            found = shutil.which(argv[0])
            if not found:
                continue
            argv = [found, *argv[1:]]
        argv = [a.replace("{match}", match) for a in argv]
        return EditorSpec(contribution.id, contribution.name, str(contribution.data["format"]), tuple(argv),
                          str(contribution.data.get("note", "")), contribution.plugin)
    return None


def custom_editor(name: str, command: str | Sequence[str], format: str = "tif", *, id: str | None = None) -> EditorSpec:
    """"Any command": a shell-like string or an argv list; ``{file}`` is appended when it is missing."""
    argv = shlex.split(command, posix=os.name != "nt") if isinstance(command, str) else list(command)
    if not argv:
        raise InputError(f"editor {name!r}: empty command")
    if not any("{file}" in a for a in argv):
        argv.append("{file}")
    return EditorSpec(id or f"custom:{name}", name, format, tuple(argv))


def custom_editors_path() -> Path:
    from icportrait_studio.core.project import config_dir

    return config_dir() / "editors.json"


def load_custom_editors(path: Path | None = None) -> list[EditorSpec]:
    """The user's custom editors; a missing or damaged file just means none."""
    p = path or custom_editors_path()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # missing, unreadable, not UTF-8, not JSON
        return []
    items = data.get("editors") if isinstance(data, dict) else None
    out = []
    for item in items if isinstance(items, list) else []:
        try:
            out.append(custom_editor(item["name"], item["argv"], item.get("format", "tif"), id=item.get("id")))
        except (KeyError, TypeError, AttributeError, ValueError, InputError):
            continue
    return out


def save_custom_editors(editors: Sequence[EditorSpec], path: Path | None = None) -> None:
    from icportrait_studio.imaging.atomic import atomic_write_text

    atomic_write_text(path or custom_editors_path(),
                      json.dumps({"editors": [e.to_dict() for e in editors]}, indent=2, ensure_ascii=False))


def available_editors(registry: PluginRegistry | None = None, *, platform: str | None = None,
                      include_custom: bool = True) -> list[EditorSpec]:
    """Installed editors described by plugins, then the user's custom commands (for the menu)."""
    reg = registry or default_registry()
    found = [e for c in reg.contributions("editor_bridges") if (e := resolve_contribution(c, platform))]
    return found + (load_custom_editors() if include_custom else [])
