"""Finding plugins, listing what they contribute, and loading them on first use, safely.

Discovery reads manifests only: folders (the bundled top-level ``plugins/``, the user's plugin folder,
``ICPORTRAIT_PLUGIN_PATH``) are scanned one level deep for ``plugin.toml``/``manifest.json``, and
entry points of the group ``icportrait_studio.plugins`` are located through their distribution's
files, so listing exporters, editors, presets and backends runs no plugin code. A plugin is imported
the first time one of its contributions is used.

A plugin never takes the app down: a broken manifest, an API version mismatch, an import error or
an unexpected exception inside a contribution disables that plugin and records a message for the
user (``messages``, and the ``subscribe`` callbacks the UI turns into a notification).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

from icportrait_studio.errors import ICPortraitError
from icportrait_studio.plugins.api import API_VERSION, ENTRY_POINT_GROUP, PluginError
from icportrait_studio.plugins.choices import PluginChoices, load_choices
from icportrait_studio.plugins.manifest import (
    Contribution,
    ManifestError,
    PluginManifest,
    api_compatible,
    find_manifest,
    read_manifest,
)

log = logging.getLogger(__name__)

PluginState = Literal["available", "loaded", "disabled", "off"]  # disabled: broken; off: the user's (or default) choice


@dataclass
class PluginInfo:
    """A discovered plugin. ``package`` is the importable module for entry-point plugins."""

    manifest: PluginManifest
    origin: Literal["folder", "entry_point"]
    location: Path | None  # the folder holding the manifest
    package: str | None = None
    state: PluginState = "available"
    message: str = ""
    module: ModuleType | None = None

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def enabled(self) -> bool:
        return self.state not in ("disabled", "off")


@dataclass(frozen=True)
class PluginMessage:
    plugin: str
    level: Literal["info", "warning", "error"]
    text: str


def bundled_plugins_dir() -> Path:
    """The top-level ``plugins/`` folder next to ``resources/``."""
    return Path(__file__).resolve().parents[2] / "plugins"


def default_plugin_dirs() -> list[Path]:
    """``ICPORTRAIT_PLUGIN_PATH`` entries first, then the user's folder, then the bundled plugins."""
    dirs = [Path(p) for p in os.environ.get("ICPORTRAIT_PLUGIN_PATH", "").split(os.pathsep) if p]
    from icportrait_studio.core.project import config_dir

    return [*dirs, config_dir() / "plugins", bundled_plugins_dir()]


class PluginRegistry:
    """All discovered plugins. Create one, call ``discover()``, then ask for contributions."""

    def __init__(self, folders: Iterable[Path] | None = None, *, entry_points: bool = True,
                 group: str = ENTRY_POINT_GROUP, choices: PluginChoices | None = None) -> None:
        """``choices``: the user's on/off choices (None: every plugin as its manifest says)."""
        self._folders = None if folders is None else [Path(f) for f in folders]
        self.choices = choices if choices is not None else PluginChoices()
        self._use_entry_points = entry_points
        self._group = group
        self._plugins: dict[str, PluginInfo] = {}
        self._extra: list[PluginInfo] = []  # disabled duplicates and broken manifests, shown but never used
        self._messages: list[PluginMessage] = []
        self._listeners: list[Callable[[PluginMessage], None]] = []
        self._lock = threading.RLock()
        self._activated = False

    # --- discovery -------------------------------------------------------------------------------

    def discover(self) -> list[PluginInfo]:
        """Read every manifest (no imports). Safe to call again: it rescans from scratch."""
        with self._lock:
            self._plugins.clear()
            self._extra.clear()
            for folder in self._folders if self._folders is not None else default_plugin_dirs():
                for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
                    if sub.is_dir() and not sub.name.startswith((".", "_")):
                        self._add_folder_plugin(sub)
            if self._use_entry_points:
                for ep in _entry_points(self._group):
                    self._add_entry_point(ep)
            return self.plugins()

    def _add_folder_plugin(self, directory: Path) -> None:
        path = find_manifest(directory)
        if path is None:
            return
        try:
            manifest = read_manifest(path)
        except ManifestError as exc:
            self._broken(directory.name, "folder", directory, None, str(exc))
            return
        if manifest is not None:
            self._register(PluginInfo(manifest, "folder", directory))

    def _add_entry_point(self, ep: importlib.metadata.EntryPoint) -> None:
        package = ep.module
        directory = _package_dir(ep)
        path = find_manifest(directory) if directory else None
        if path is None:
            self._broken(ep.name, "entry_point", directory, package,
                         f"no plugin.toml or manifest.json found next to the package '{package}'")
            return
        try:
            manifest = read_manifest(path)
        except ManifestError as exc:
            self._broken(ep.name, "entry_point", directory, package, str(exc))
            return
        if manifest is None:
            self._broken(ep.name, "entry_point", directory, package, f"{path} is not an IC-Portrait manifest")
            return
        self._register(PluginInfo(manifest, "entry_point", directory, package))

    def _broken(self, name: str, origin: Any, where: Path | None, package: str | None, text: str) -> None:
        info = PluginInfo(PluginManifest(name, "?", "?"), origin, where, package, "disabled", text)
        self._extra.append(info)
        self._emit(PluginMessage(name, "error", f"plugin '{name}' disabled: {text}"))

    def _register(self, info: PluginInfo) -> None:
        name = info.name
        if name in self._plugins:
            first = self._plugins[name].location
            info.state, info.message = "disabled", f"another plugin named '{name}' was found first ({first})"
            self._extra.append(info)
            self._emit(PluginMessage(name, "warning", f"plugin '{name}' at {info.location} ignored: {info.message}"))
            return
        if not api_compatible(info.manifest.api_version):
            info.state = "disabled"
            info.message = (f"written for plugin API {info.manifest.api_version}, "
                            f"this IC-Portrait Studio provides {API_VERSION}")
            self._emit(PluginMessage(name, "error", f"plugin '{name}' disabled: {info.message}"))
        elif not self.choices.wants(info.manifest):
            info.state = "off"
            info.message = ("turned off in Help → Plugins…" if self.choices.chosen(name)
                            else "off until you turn it on in Help → Plugins…")
        self._plugins[name] = info

    # --- listing (never imports) -----------------------------------------------------------------

    def plugins(self) -> list[PluginInfo]:
        with self._lock:
            return [*self._plugins.values(), *self._extra]

    def get(self, name: str) -> PluginInfo | None:
        return self._plugins.get(name)

    def contributions(self, kind: str) -> list[Contribution]:
        """What enabled plugins contribute, in discovery order, read from the manifests."""
        with self._lock:
            return [c for info in self._plugins.values() if info.enabled for c in info.manifest.of_kind(kind)]

    @property
    def messages(self) -> list[PluginMessage]:
        with self._lock:
            return list(self._messages)

    def subscribe(self, listener: Callable[[PluginMessage], None]) -> None:
        """``listener`` gets every later message (from whichever thread hit the problem)."""
        with self._lock:
            self._listeners.append(listener)

    def _emit(self, message: PluginMessage) -> None:
        with self._lock:
            self._messages.append(message)
            listeners = list(self._listeners)
        (log.warning if message.level != "info" else log.info)("%s", message.text)
        for listener in listeners:
            try:
                listener(message)
            except Exception:  # a broken listener must not turn a plugin problem into an app crash
                log.exception("plugin message listener failed")

    # --- loading and guarded calls ---------------------------------------------------------------

    def disable(self, name: str, reason: str) -> None:
        """Turn a plugin off for the rest of the session; its backends answer with the reason."""
        with self._lock:
            info = self._plugins.get(name)
            if info is None or info.state == "disabled":
                return
            info.state, info.message = "disabled", reason
        self._emit(PluginMessage(name, "error", f"plugin '{name}' disabled: {reason}"))
        for c in info.manifest.of_kind("backends"):
            _register_disabled_backend(c.id, f"plugin '{name}' is disabled: {reason}")

    def load(self, name: str) -> ModuleType:
        """Import the plugin's package (once). Failure disables the plugin and raises ``PluginError``."""
        with self._lock:
            info = self._require_enabled(name)
            if info.module is not None:
                return info.module
            try:
                module = self._import(info)
            except Exception as exc:
                reason = f"it failed to load ({type(exc).__name__}: {exc})"
                log.debug("loading plugin %s failed", name, exc_info=True)
                self.disable(name, reason)
                raise PluginError(f"plugin '{name}' disabled: {reason}") from exc
            info.module, info.state = module, "loaded"
            return module

    def _require_enabled(self, name: str) -> PluginInfo:
        info = self._plugins.get(name)
        if info is None:
            raise PluginError(f"no plugin named '{name}'")
        if info.state == "disabled":
            raise PluginError(f"plugin '{name}' is disabled: {info.message}")
        return info

    def _import(self, info: PluginInfo) -> ModuleType:
        if info.package:
            return importlib.import_module(info.package)
        assert info.location is not None
        init = info.location / "__init__.py"
        if not init.is_file():
            raise ImportError(f"{info.location} has no __init__.py (a data-only plugin cannot provide code)")
        modname = "icportrait_plugin_" + re.sub(r"\W", "_", info.name)
        spec = importlib.util.spec_from_file_location(modname, init, submodule_search_locations=[str(info.location)])
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot import {init}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(modname, None)
            raise
        return module

    def resolve(self, contribution: Contribution) -> Any:
        """The object a contribution's ``entry`` ("module:attr") names, importing the plugin if needed."""
        module = self.load(contribution.plugin)
        if not contribution.entry:
            raise PluginError(f"{contribution.kind} '{contribution.id}' of plugin '{contribution.plugin}' has no entry")
        mod_part, attr_part = contribution.entry.split(":", 1)
        return self.guarded(contribution.plugin, _resolve_entry, module, mod_part, attr_part)

    def guarded(self, plugin: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call plugin code. Our own user-facing errors (bad input, cancel) and OS errors (disk full,
        permission) pass through; anything else is a plugin bug: the plugin is disabled and the
        caller gets a ``PluginError`` it can show."""
        self._require_enabled(plugin)
        try:
            return fn(*args, **kwargs)
        except (ICPortraitError, OSError):
            raise
        except Exception as exc:
            reason = f"it raised {type(exc).__name__}: {exc}"
            log.debug("plugin %s raised", plugin, exc_info=True)
            self.disable(plugin, reason)
            raise PluginError(f"plugin '{plugin}' disabled: {reason}") from exc

    def instantiate(self, contribution: Contribution) -> Any:
        """Resolve the entry and, when it is a class or factory, call it with no arguments."""
        target = self.resolve(contribution)
        return self.guarded(contribution.plugin, target) if callable(target) else target

    # --- activation of data contributions ----------------------------------------------------------

    def activate(self) -> None:
        """Hook contributions that need no import into the engine: preset folders and (lazy) backends."""
        from icportrait_studio.core.presets import add_preset_dir
        from icportrait_studio.pipeline.registry import register_backend

        with self._lock:
            if self._activated:
                return
            self._activated = True
            for c in self.contributions("rig_presets"):
                info = self._plugins[c.plugin]
                if info.location is not None:
                    add_preset_dir(info.location / str(c.data["dir"]))
            for c in self.contributions("backends"):
                register_backend(c.id, self._backend_factory(c))

    def _backend_factory(self, contribution: Contribution) -> Callable[[], Any]:
        def factory() -> Any:
            return _GuardedBackend(self.instantiate(contribution), self, contribution.plugin)

        return factory


class _GuardedBackend:
    """Wraps a plugin backend so a crash inside ``run`` disables the plugin instead of the app."""

    def __init__(self, inner: Any, registry: PluginRegistry, plugin: str) -> None:
        self._inner, self._registry, self._plugin = inner, registry, plugin
        self.name = getattr(inner, "name", plugin)

    def available(self) -> tuple[bool, str]:
        return self._registry.guarded(self._plugin, self._inner.available)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        return self._registry.guarded(self._plugin, self._inner.run, *args, **kwargs)

    def __getattr__(self, item: str) -> Any:
        return getattr(self._inner, item)


def _register_disabled_backend(name: str, reason: str) -> None:
    from icportrait_studio.pipeline.registry import register_backend

    def refuse() -> Any:
        raise PluginError(reason)

    register_backend(name, refuse)


def _resolve_entry(module: ModuleType, mod_part: str, attr_part: str) -> Any:
    target: Any = importlib.import_module(f"{module.__name__}.{mod_part}") if mod_part else module
    for attr in attr_part.split("."):
        target = getattr(target, attr)
    return target


def _entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    try:
        return list(importlib.metadata.entry_points(group=group))
    except Exception:  # a broken installed distribution must not stop discovery
        log.warning("could not read entry points of group %s", group, exc_info=True)
        return []


def _package_dir(ep: importlib.metadata.EntryPoint) -> Path | None:
    """The folder of the entry point's package, found without importing (or executing) it."""
    parts = ep.module.split(".")
    dist = getattr(ep, "dist", None)
    files = getattr(dist, "files", None) or []
    wanted = {"/".join([*parts, name]) for name in ("plugin.toml", "manifest.json")}
    for f in files:
        if str(f).replace("\\", "/") in wanted:
            return Path(str(dist.locate_file(f))).parent  # type: ignore[union-attr]
    try:  # not listed in RECORD (editable installs, plain sys.path entries): locate the top package
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for base in spec.submodule_search_locations:
        candidate = Path(base).joinpath(*parts[1:])
        if candidate.is_dir():
            return candidate
    return None


_default: PluginRegistry | None = None
_default_lock = threading.Lock()


def default_registry() -> PluginRegistry:
    """The app-wide registry, discovered and activated on first use."""
    global _default
    with _default_lock:
        if _default is None:
            registry = PluginRegistry(choices=load_choices())
            registry.discover()
            registry.activate()
            _default = registry
        return _default


def reset_default_registry() -> None:
    """Forget the app-wide registry (tests, or after the user installs a plugin)."""
    global _default
    with _default_lock:
        _default = None
