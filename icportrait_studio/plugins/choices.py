"""Which plugins the user turned on or off (Help → Plugins…), kept in ``plugins.json`` in the config folder.

A plugin's manifest says whether it starts on (``enabled_by_default``, true unless it says otherwise:
the bundled example plugin is off, so its demo backend does not sit in every user's backend list);
the user's explicit choice overrides that either way. Only explicit choices are stored, so a plugin
that changes its default later is not pinned by a file that merely restated the old one.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from icportrait_studio.imaging.atomic import atomic_write_text
from icportrait_studio.plugins.manifest import PluginManifest

log = logging.getLogger(__name__)

CHOICES_FILE = "plugins.json"


@dataclass
class PluginChoices:
    """The user's on/off choices by plugin name; ``path`` is where ``save`` writes them (None: nowhere)."""

    on: set[str] = field(default_factory=set)
    off: set[str] = field(default_factory=set)
    path: Path | None = None

    def wants(self, manifest: PluginManifest) -> bool:
        """Whether the plugin should run: the user's choice, else its manifest's default."""
        if manifest.name in self.on:
            return True
        if manifest.name in self.off:
            return False
        return manifest.enabled_by_default

    def chosen(self, name: str) -> bool:
        return name in self.on or name in self.off

    def set(self, name: str, on: bool) -> None:
        (self.on if on else self.off).add(name)
        (self.off if on else self.on).discard(name)

    def save(self) -> None:
        if self.path is not None:
            atomic_write_text(self.path, json.dumps({"on": sorted(self.on), "off": sorted(self.off)}, indent=2) + "\n")


def load_choices(path: Path | None = None) -> PluginChoices:
    """The choices saved at ``path`` (default: the config folder's ``plugins.json``).

    A missing file means no choices; an unreadable or malformed one is logged and treated the same,
    so a damaged file never keeps the app from starting (saving a choice rewrites it whole).
    """
    if path is None:
        from icportrait_studio.core.project import config_dir

        path = config_dir() / CHOICES_FILE
    choices = PluginChoices(path=path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return choices
    except (OSError, ValueError) as exc:
        log.warning("ignoring the plugin choices in %s: %s", path, exc)
        return choices
    if not isinstance(data, dict):
        log.warning("ignoring the plugin choices in %s: not a JSON object", path)
        return choices
    for key, into in (("on", choices.on), ("off", choices.off)):
        names = data.get(key, [])
        if isinstance(names, list):
            into.update(n for n in names if isinstance(n, str))
    choices.off -= choices.on
    return choices
