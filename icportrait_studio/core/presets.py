"""Light-rig presets: JSON files in ``resources/presets/``, any folder plugins add, and the user's own
(saved from the app into ``<config>/presets/``)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from icportrait_studio.core.lights import LightRig
from icportrait_studio.errors import InputError


def resources_dir() -> Path:
    """The top-level ``resources/`` folder (override with ICPORTRAIT_RESOURCES)."""
    env = os.environ.get("ICPORTRAIT_RESOURCES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "resources"


_extra_dirs: list[Path] = []


def add_preset_dir(path: Path) -> None:
    """Let a plugin contribute presets."""
    if path not in _extra_dirs:
        _extra_dirs.append(path)


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    rig: LightRig
    path: Path

    @property
    def thumbnail(self) -> Path:
        return self.path.parent / "thumbnails" / f"{self.name}.png"


def user_presets_dir() -> Path:
    """Where the user's own presets are saved (in the settings folder)."""
    from icportrait_studio.core.project import config_dir  # lazy: project is the heavier module

    return config_dir() / "presets"


def _preset_dirs() -> list[Path]:
    return [resources_dir() / "presets", *_extra_dirs, user_presets_dir()]


MAX_NAME = 60


def save_user_preset(name: str, rig: LightRig, description: str = "") -> Path:
    """Save ``rig`` as the user's preset ``name`` (replacing the user's own of that name); the bundled
    and plugin presets keep their names. Written atomically; returns the file."""
    name = " ".join(name.split())
    if not name:
        raise InputError("a preset needs a name")
    if len(name) > MAX_NAME or any(c in name for c in '/\\:*?"<>|') or name.startswith("."):
        raise InputError(f"{name!r} cannot be a preset name (at most {MAX_NAME} characters, no / \\ : * ? \" < > |)")
    folder = user_presets_dir()
    taken = {p.name for p in list_presets() if p.path.parent != folder}
    if name in taken:
        raise InputError(f"{name!r} is a bundled preset: choose another name")
    data = {**rig.to_dict(), "name": name, "description": description or "Saved from the app"}
    from icportrait_studio.imaging.atomic import atomic_write_text  # lazy: the imaging package loads OpenCV

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    atomic_write_text(path, json.dumps(data, indent=2))
    return path


def list_presets() -> list[Preset]:
    presets: dict[str, Preset] = {}
    for d in _preset_dirs():
        for p in sorted(d.glob("*.json")) if d.is_dir() else []:
            try:
                data = json.loads(p.read_text(encoding="utf-8"))
                rig = LightRig.from_dict(data)
            except (OSError, json.JSONDecodeError, InputError):
                continue
            name = data.get("name") or p.stem
            presets[name] = Preset(name, data.get("description", ""), rig, p)
    return list(presets.values())


def load_preset(name: str) -> Preset:
    for preset in list_presets():
        if preset.name.lower() == name.lower():
            return preset
    names = ", ".join(p.name for p in list_presets())
    raise InputError(f"unknown preset {name!r}; available: {names}")
