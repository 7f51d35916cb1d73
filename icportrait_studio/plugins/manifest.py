"""Plugin manifests: plain data that says what a plugin contributes, readable without importing it.

``plugin.toml`` (or ``manifest.json``) sits next to the plugin's ``__init__.py``::

    name = "psd-export"
    version = "1.0.0"
    api_version = "1.0"
    description = "Layered Photoshop documents"

    [[contributes.exporters]]
    id = "psd"
    name = "Photoshop document"
    extensions = [".psd"]
    entry = "psd:PsdExporter"      # module inside the plugin package : attribute (class or factory)

Contribution kinds: ``exporters`` (id, name, extensions, entry), ``editor_bridges`` (id, name, format,
commands: data only, see ``plugins/external_editors``), ``rig_presets`` (dir, relative to the plugin)
and ``backends`` (id = backend name, entry). Keeping the manifest declarative is what lets the app
fill its menus at start-up without running any plugin code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from icportrait_studio.plugins.api import API_VERSION, CONTRIBUTION_KINDS

MANIFEST_NAMES = ("plugin.toml", "manifest.json")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENTRY_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ManifestError(ValueError):
    """The manifest is missing fields or malformed; the message says which."""


@dataclass(frozen=True)
class Contribution:
    """One thing a plugin adds. ``data`` keeps the manifest table as written (for kind-specific keys)."""

    kind: str
    plugin: str
    id: str
    name: str
    entry: str | None = None
    data: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class PluginManifest:
    name: str
    version: str
    api_version: str
    description: str = ""
    contributions: tuple[Contribution, ...] = ()
    path: Path | None = None  # the manifest file it was read from
    enabled_by_default: bool = True  # false: listed, but off until the user turns it on (Help → Plugins…)

    def of_kind(self, kind: str) -> list[Contribution]:
        return [c for c in self.contributions if c.kind == kind]


def api_compatible(declared: str, current: str = API_VERSION) -> bool:
    """Same major version, and the plugin's minor version is not newer than the app's."""
    try:
        d_major, d_minor = _split_version(declared)
        c_major, c_minor = _split_version(current)
    except ValueError:
        return False
    return d_major == c_major and d_minor <= c_minor


def _split_version(text: str) -> tuple[int, int]:
    parts = str(text).strip().split(".")
    if not parts or not parts[0].isdigit() or (len(parts) > 1 and not parts[1].isdigit()):
        raise ValueError(f"not a version: {text!r}")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def find_manifest(directory: Path) -> Path | None:
    """The manifest file in ``directory``, if there is one."""
    for name in MANIFEST_NAMES:
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def read_manifest(path: Path) -> PluginManifest | None:
    """Parse a manifest file. None for a ``manifest.json`` that is not ours (a UXP or browser manifest
    in the same folder tree); ``ManifestError`` for one of ours that is broken."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"cannot read {path}: {exc}") from exc
    if path.suffix == ".toml":
        data = _load_toml(text, path)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not valid JSON ({exc})") from exc
        if not isinstance(data, dict) or ("api_version" not in data and "contributes" not in data):
            return None
    return parse_manifest(data, path)


def _load_toml(text: str, path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError as exc:
            raise ManifestError(f"{path}: reading plugin.toml needs Python 3.11 or the 'tomli' package") from exc
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{path}: not valid TOML ({exc})") from exc


def parse_manifest(data: dict[str, Any], path: Path | None = None) -> PluginManifest:
    """Validate the manifest's fields; every problem is reported with the field's name."""
    where = str(path) if path else "manifest"
    name = data.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ManifestError(f"{where}: 'name' must be a short identifier (letters, digits, '-', '_', '.')")
    for key in ("version", "api_version"):
        if not isinstance(data.get(key), (str, int, float)) or not str(data[key]).strip():
            raise ManifestError(f"{where}: '{key}' is required")
    contributes = data.get("contributes", {})
    if not isinstance(contributes, dict):
        raise ManifestError(f"{where}: 'contributes' must be a table")
    unknown = set(contributes) - set(CONTRIBUTION_KINDS)
    if unknown:
        raise ManifestError(f"{where}: unknown contribution kind(s) {sorted(unknown)}; "
                            f"known: {', '.join(CONTRIBUTION_KINDS)}")
    items: list[Contribution] = []
    for kind in CONTRIBUTION_KINDS:
        entries = contributes.get(kind, [])
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ManifestError(f"{where}: 'contributes.{kind}' must be an array of tables")
        items.extend(_contribution(kind, name, e, where) for e in entries)
    default_on = data.get("enabled_by_default", True)
    if not isinstance(default_on, bool):
        raise ManifestError(f"{where}: 'enabled_by_default' must be true or false")
    return PluginManifest(name=name, version=str(data["version"]), api_version=str(data["api_version"]),
                          description=str(data.get("description", "")), contributions=tuple(items), path=path,
                          enabled_by_default=default_on)


def _contribution(kind: str, plugin: str, entry: dict[str, Any], where: str) -> Contribution:
    cid = entry.get("id") or (entry.get("dir") if kind == "rig_presets" else None)
    if not isinstance(cid, str) or not cid:
        raise ManifestError(f"{where}: every entry of '{kind}' needs an 'id'")
    ref = entry.get("entry")
    if kind in ("exporters", "backends") and (not isinstance(ref, str) or not _ENTRY_RE.match(ref)):
        raise ManifestError(f"{where}: {kind} '{cid}' needs an 'entry' like \"module:attribute\"")
    if kind == "exporters":
        exts = entry.get("extensions")
        if not isinstance(exts, list) or not exts or not all(isinstance(x, str) and x.startswith(".") for x in exts):
            raise ManifestError(f"{where}: exporter '{cid}' needs 'extensions' like [\".psd\"]")
    if kind == "rig_presets" and not isinstance(entry.get("dir"), str):
        raise ManifestError(f"{where}: rig_presets entries need a 'dir'")
    if kind == "editor_bridges" and entry.get("format") not in ("psd", "ora", "tif"):
        raise ManifestError(f"{where}: editor '{cid}' needs 'format' = \"psd\", \"ora\" or \"tif\"")
    return Contribution(kind=kind, plugin=plugin, id=cid, name=str(entry.get("name", cid)),
                        entry=ref if isinstance(ref, str) else None, data=dict(entry))
