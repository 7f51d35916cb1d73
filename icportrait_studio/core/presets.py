"""Light-rig presets: JSON files in ``resources/presets/`` (and any folder plugins add)."""

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


def _preset_dirs() -> list[Path]:
    return [resources_dir() / "presets", *_extra_dirs]


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
