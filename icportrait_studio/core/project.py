"""``.icps`` project files and crash-recovery autosaves.

A project is a zip so it can be inspected with any archive tool and survives partial tooling:

    manifest.json          format "icps", version, app version, rig, view, layer stack, history
    original.png           the photo's pixels, 16-bit when the source was 16-bit (8-bit otherwise, exact)
    original.icc           the photo's embedded colour profile, when it had one
    layers/<n>.png         one 16-bit sRGB-encoded PNG per layer that has its own pixels
    layers/<n>-mask.png    16-bit grayscale mask (linear coverage), when the layer has a mask
    history/masks/<k>.png  masks that history steps had (one file per distinct mask), so undo past a
                           mask edit still gives the old mask back after the project is reopened

Why PNG inside the zip rather than raw arrays: any image viewer can open a layer, and 16-bit sRGB
keeps every layer within display precision at a third of the size of float32. The zip is written to a
temp file and renamed over the target (``atomic_write``), so a crash mid-save never eats a project.
Qt-free: the UI calls this from its worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as _dt
import json
import os
import sys
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from icportrait_studio.core.document import LAYER_KINDS, Document, Layer
from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.png_cache import PNG_CACHE, digest
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import InputError

FORMAT = "icps"
VERSION = 1
EXTENSION = ".icps"
APP_DIR_NAME = "icportrait-studio"

# PNG deflate level: 1 is ~4x faster than the default on a 12-megapixel 16-bit layer, ~10 % larger.
_PNG_LEVEL = 1


@dataclass(frozen=True)
class LayerProps:
    """A layer's place in the stack at one point of the history (its pixels live in the store)."""

    uid: int
    name: str
    kind: str
    visible: bool = True
    opacity: float = 1.0
    # Key of the layer's mask at this step in ``ProjectHistory.masks`` (None: no mask). Projects written
    # before masks were recorded have ``mask_recorded`` False: such steps keep the layer's current mask.
    mask: str | None = None
    mask_recorded: bool = False

    def to_dict(self) -> dict:
        d = {"uid": self.uid, "name": self.name, "kind": self.kind, "visible": self.visible,
             "opacity": self.opacity}
        if self.mask_recorded:
            d["mask"] = self.mask
        return d

    @classmethod
    def from_dict(cls, d: dict) -> LayerProps:
        mask = d.get("mask")
        return cls(int(d["uid"]), str(d.get("name", "")), str(d.get("kind", "imported")),
                   bool(d.get("visible", True)), float(d.get("opacity", 1.0)),
                   None if mask is None else str(mask), "mask" in d)


@dataclass(frozen=True)
class HistoryEntry:
    """One state of the undo history: the description of the step that led to it, and the state."""

    description: str
    rig: LightRig
    view: ViewPose = field(default_factory=ViewPose)
    layers: tuple[LayerProps, ...] | None = None  # None: the layer stack is not recorded for this entry

    def to_dict(self) -> dict:
        d: dict = {"description": self.description, "rig": rig_to_dict(self.rig), "view": self.view.to_dict()}
        if self.layers is not None:
            d["layers"] = [p.to_dict() for p in self.layers]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> HistoryEntry:
        layers = d.get("layers")
        return cls(
            str(d.get("description", "")),
            LightRig.from_dict(d["rig"]),
            ViewPose.from_dict(d.get("view") or {}),
            None if layers is None else tuple(LayerProps.from_dict(p) for p in layers),
        )


@dataclass
class ProjectHistory:
    """The undo history saved with a project: ``entries[index]`` is the document's current state.

    ``entries[0]`` is the state the document was opened in; entry ``i > 0`` is the state after step ``i``.
    ``layer_pixels`` holds pixels of layers that appear in the history but not in the current stack
    (an imported layer that was deleted), keyed by their uid in the loaded document. ``masks`` holds
    every distinct mask the history refers to (``LayerProps.mask`` keys), shared between steps.
    """

    entries: list[HistoryEntry] = field(default_factory=list)
    index: int = 0
    layer_pixels: dict[int, Layer] = field(default_factory=dict)
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[HistoryEntry]:
        return iter(self.entries)

    def __getitem__(self, i: int) -> HistoryEntry:
        return self.entries[i]

    @property
    def descriptions(self) -> list[str]:
        return [e.description for e in self.entries]


def rig_to_dict(rig: LightRig) -> dict:
    """``LightRig.to_dict`` with colours as float triples: hex would round them to 8 bits, and a project
    must give back exactly the rig it saved (``LightRig.from_dict`` reads both forms)."""
    d = rig.to_dict()
    d["lights"] = [{**ld, "color": [float(c) for c in light.color]} for ld, light in zip(d["lights"], rig.lights,
                                                                                          strict=True)]
    return d


# ---------------------------------------------------------------------------------------------------
# Saving


def save_project(doc: Document, path: str | os.PathLike[str],
                 history: ProjectHistory | Sequence[HistoryEntry] | None = None, *,
                 extra_layers: Sequence[Layer] = (), app_version: str | None = None) -> None:
    """Write ``doc`` (and its history) to ``path`` atomically. Raises InputError when it cannot.

    ``extra_layers``: layers referenced by the history but no longer in the stack, saved so undo
    after reopening still finds their pixels.
    """
    from icportrait_studio import __version__

    if not isinstance(history, ProjectHistory):
        entries = list(history or [])
        history = ProjectHistory(entries, max(0, len(entries) - 1))
    path = Path(path)
    members: dict[str, bytes] = {}
    members["original.png"] = _encode_png(doc.base, doc.bit_depth, doc.alpha)
    if doc.icc_profile:
        members["original.icc"] = bytes(doc.icc_profile)
    layer_dicts = [_layer_entry(layer, i, members) for i, layer in enumerate(doc.layers)]
    extra = [_layer_entry(layer, len(layer_dicts) + i, members) for i, layer in enumerate(extra_layers)
             if layer.pixels is not None]
    # a history mask that is also a layer's current mask points at that layer's file instead of a copy
    stored = {id(layer.mask): d["mask"] for layer, d in zip(doc.layers, layer_dicts, strict=True) if d["mask"]}
    history_masks = {}
    for key, mask in history.masks.items():
        if not _safe_key(key):
            continue
        name = stored.get(id(mask))
        if name is None:
            name = stored[id(mask)] = f"history/masks/{key}.png"
            members[name] = _encode_mask(mask)
        history_masks[key] = name
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "app_version": app_version or __version__,
        "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "document": {
            "id": doc.id,
            "source_path": doc.path,
            "project_path": doc.project_path,
            "size": list(doc.size),
            "bit_depth": doc.bit_depth,
            "encoding": doc.encoding,
            "has_alpha": doc.alpha is not None,
            "backend": doc.backend,
            "warnings": list(doc.warnings),
            "source_landmarks": _landmarks_to_json(doc.source_landmarks),
        },
        "rig": rig_to_dict(doc.rig),
        "view": doc.view.to_dict(),
        "original": "original.png",
        "icc": "original.icc" if doc.icc_profile else None,
        "layers": layer_dicts,
        "history_layers": extra,
        "history": [e.to_dict() for e in history.entries],
        "history_index": history.index,
        "history_masks": history_masks,
        "analysis_info": doc.analysis_info,
    }
    members["manifest.json"] = json.dumps(manifest, indent=2, default=_json_default).encode("utf-8")

    # Imported here: the imaging package pulls in OpenCV and the decoders, which the app's start-up
    # (it needs this module for config_dir and the history types) should not pay for.
    from icportrait_studio.imaging.atomic import atomic_write

    def write(tmp: str) -> None:
        with zipfile.ZipFile(tmp, "w") as zf:
            # Manifest first and deflated; PNGs are stored as they are (already compressed).
            zf.writestr("manifest.json", members.pop("manifest.json"), compress_type=zipfile.ZIP_DEFLATED)
            for name, data in members.items():
                zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)

    atomic_write(path, write, suffix=".tmp")  # an OS failure arrives as an InputError, worded for a person


def _safe_key(key: str) -> bool:
    return bool(key) and len(key) <= 64 and all(c.isalnum() or c in "-_" for c in key)


def _layer_entry(layer: Layer, index: int, members: dict[str, bytes]) -> dict:
    entry = {"uid": layer.uid, "name": layer.name, "kind": layer.kind, "visible": layer.visible,
             "opacity": layer.opacity, "quality": layer.quality, "request_id": layer.request_id,
             "file": None, "mask": None, "size": None}
    if layer.kind != "base" and layer.pixels is not None:
        name = f"layers/{index}-{layer.kind}.png"
        members[name] = _encode_png(layer.pixels, 16, None)
        entry["file"], entry["size"] = name, [int(layer.pixels.shape[1]), int(layer.pixels.shape[0])]
    if layer.mask is not None:
        name = f"layers/{index}-{layer.kind}-mask.png"
        members[name] = _encode_mask(layer.mask)
        entry["mask"] = name
    return entry


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def _encode_png(rgb_linear: np.ndarray, bit_depth: int, alpha: np.ndarray | None) -> bytes:
    key = ("rgb", bit_depth, _PNG_LEVEL, digest(rgb_linear, alpha))
    return PNG_CACHE.get(key, lambda: _encode_png_now(rgb_linear, bit_depth, alpha))


def _encode_mask(mask: np.ndarray) -> bytes:
    return PNG_CACHE.get(("mask", _PNG_LEVEL, digest(mask)), lambda: _encode_mask_now(mask))


def _encode_png_now(rgb_linear: np.ndarray, bit_depth: int, alpha: np.ndarray | None) -> bytes:
    import cv2

    from icportrait_studio.imaging.color import encode_from_linear

    color = encode_from_linear(rgb_linear, 16 if bit_depth == 16 else 8)
    if alpha is not None:
        top = 65535 if color.dtype == np.uint16 else 255
        a = np.rint(np.clip(alpha, 0.0, 1.0) * top).astype(color.dtype)
        bgr = cv2.cvtColor(np.dstack([color, a]), cv2.COLOR_RGBA2BGRA)
    else:
        bgr = cv2.cvtColor(color, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL])
    if not ok:
        raise InputError("Cannot save the project: the PNG encoder failed")
    return buf.tobytes()


def _encode_mask_now(mask: np.ndarray) -> bytes:
    import cv2

    m = np.rint(np.clip(np.nan_to_num(mask.astype(np.float32)), 0.0, 1.0) * 65535).astype(np.uint16)
    ok, buf = cv2.imencode(".png", m, [cv2.IMWRITE_PNG_COMPRESSION, _PNG_LEVEL])
    if not ok:
        raise InputError("Cannot save the project: the PNG encoder failed")
    return buf.tobytes()


# ---------------------------------------------------------------------------------------------------
# Loading


def _landmarks_to_json(lm: np.ndarray | None) -> dict | None:
    """The face landmarks the photo's file carried (original pixels), kept with the project."""
    if lm is None:
        return None
    a = np.ascontiguousarray(lm, dtype="<f4")
    return {"shape": list(a.shape), "data": base64.b64encode(a.tobytes()).decode("ascii")}


def _landmarks_from_json(rec: object, shape: tuple[int, int]) -> np.ndarray | None:
    """Landmarks back from the manifest; anything malformed or off the picture is dropped (detect again)."""
    if not isinstance(rec, dict):
        return None
    try:
        lm = np.frombuffer(base64.b64decode(rec["data"]), dtype="<f4").reshape(tuple(int(n) for n in rec["shape"]))
    except (ValueError, KeyError, TypeError):
        return None
    if lm.ndim != 2 or lm.shape[1] != 3 or not np.isfinite(lm).all():
        return None
    h, w = shape
    if (lm[:, 0] < -w).any() or (lm[:, 0] > 2 * w).any() or (lm[:, 1] < -h).any() or (lm[:, 1] > 2 * h).any():
        return None
    return lm.astype(np.float32)


def load_project(path: str | os.PathLike[str]) -> tuple[Document, ProjectHistory]:
    """Read a project; any problem (not a project, damaged, from a newer version) raises InputError."""
    p = Path(path)
    where = f"Cannot open project '{p}'"
    if not p.exists():
        raise InputError(f"{where}: file not found")
    if p.is_dir():
        raise InputError(f"{where}: it is a folder")
    try:
        zf = zipfile.ZipFile(p)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(f"{where}: not an IC-Portrait project, or the file is damaged") from exc
    with zf:
        try:
            return _read(zf, where, p)
        except InputError as exc:
            if str(exc).startswith(where):
                raise
            raise InputError(f"{where}: the file is damaged ({exc})") from exc  # a bad rig, view or layer field
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError, TypeError, AttributeError,
                OverflowError, zlib.error) as exc:  # a damaged or hand-edited manifest: a field of the wrong type
            raise InputError(f"{where}: the file is damaged ({type(exc).__name__}: {exc})") from exc


def _read(zf: zipfile.ZipFile, where: str, path: Path) -> tuple[Document, ProjectHistory]:
    names = set(zf.namelist())
    if "manifest.json" not in names:
        raise InputError(f"{where}: not an IC-Portrait project (no manifest.json inside)")
    try:
        manifest = json.loads(zf.read("manifest.json").decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{where}: the manifest is damaged ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(f"{where}: not an IC-Portrait project (unknown format)")
    version = manifest.get("version")
    if not isinstance(version, int) or version < 1:
        raise InputError(f"{where}: the manifest has no valid format version")
    if version > VERSION:
        app = manifest.get("app_version", "?")
        raise InputError(f"{where}: it was saved by a newer IC-Portrait Studio ({app}, project format {version}); "
                         f"this version reads format {VERSION}. Update the app to open it.")

    def member(name: str | None) -> bytes:
        if not name or name not in names:
            raise InputError(f"{where}: the file is damaged ({name or 'a layer'} is missing)")
        return zf.read(name)

    info = manifest.get("document") or {}
    bit_depth = 16 if int(info.get("bit_depth", 8)) == 16 else 8
    base, alpha = _decode_png(member(manifest.get("original", "original.png")), where, "the original image")
    icc = member(manifest["icc"]) if manifest.get("icc") else None
    uid_map: dict[int, int] = {}  # saved uid -> fresh uid, so loaded layers never clash with new ones
    decoded: dict[str, np.ndarray] = {}  # a history mask stored once for a layer is decoded once, shared

    def mask_of(name: str) -> np.ndarray:
        if name not in decoded:
            decoded[name] = _decode_mask(member(name), where, name)
        return decoded[name]

    layers = [_read_layer(d, base, member, mask_of, where, uid_map) for d in manifest.get("layers", [])]
    if not any(layer.kind == "base" for layer in layers):
        layers.insert(0, Layer("Original", "base", base))
    extra = [_read_layer(d, base, member, mask_of, where, uid_map) for d in manifest.get("history_layers", [])]
    doc = Document(
        base=base, alpha=alpha, icc_profile=icc, bit_depth=bit_depth, path=_text_or_none(info.get("source_path")),
        encoding="linear" if info.get("encoding") == "linear" else "srgb",
        rig=LightRig.from_dict(manifest.get("rig") or {}), view=ViewPose.from_dict(manifest.get("view") or {}),
        backend=str(info.get("backend", "physical")), layers=layers, dirty=False,
        analysis_info=_dict_or_empty(manifest.get("analysis_info")),
        warnings=[str(w) for w in info.get("warnings") or []],
        source_landmarks=_landmarks_from_json(info.get("source_landmarks"), base.shape[:2]),
    )
    if info.get("id"):
        doc.id = str(info["id"])
    doc.project_path = str(path)
    entries = []
    for e in manifest.get("history", []):
        entry = HistoryEntry.from_dict(e)
        if entry.layers is not None:
            entry = replace(entry, layers=tuple(replace(lp, uid=uid_map.setdefault(lp.uid, _fresh_uid()))
                                                for lp in entry.layers))
        entries.append(entry)
    index = int(manifest.get("history_index", len(entries) - 1)) if entries else 0
    stored = manifest.get("history_masks") or {}
    masks = {key: mask_of(name) for key, name in stored.items()}
    for entry in entries:
        for lp in entry.layers or ():
            if lp.mask is not None and lp.mask not in masks:
                raise InputError(f"{where}: the file is damaged (history mask {lp.mask!r} is missing)")
    history = ProjectHistory(entries, max(0, min(index, len(entries) - 1)), {layer.uid: layer for layer in extra},
                             masks)
    return doc, history


def _text_or_none(value: object) -> str | None:
    """A path the manifest records, or None when a hand-edited manifest holds something else there."""
    return value if isinstance(value, str) and value else None


def _dict_or_empty(value: object) -> dict:
    return value if isinstance(value, dict) else {}


def _fresh_uid() -> int:
    return Layer("", "imported").uid


def _read_layer(d: dict, base: np.ndarray, member, mask_of, where: str, uid_map: dict[int, int]) -> Layer:
    kind = d.get("kind")
    if kind not in LAYER_KINDS:
        raise InputError(f"{where}: the file is damaged (unknown layer kind {kind!r})")
    pixels = base if kind == "base" else None
    if kind != "base" and d.get("file"):
        pixels, _ = _decode_png(member(d["file"]), where, d["file"])
    mask = mask_of(d["mask"]) if d.get("mask") else None
    layer = Layer(name=str(d.get("name") or kind.capitalize()), kind=kind, pixels=pixels,
                  visible=bool(d.get("visible", True)), opacity=float(d.get("opacity", 1.0)), mask=mask,
                  quality="preview" if d.get("quality") == "preview" else "full",
                  request_id=int(d.get("request_id", 0)))
    if "uid" in d:
        old = int(d["uid"])
        if old in uid_map:
            layer.uid = uid_map[old]
        else:
            uid_map[old] = layer.uid
    return layer


def _decode_png(data: bytes, where: str, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    import cv2

    from icportrait_studio.imaging.color import decode_to_linear

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"{where}: the file is damaged ({what} cannot be decoded)")
    alpha = None
    if arr.shape[2] == 4:
        top = 65535.0 if arr.dtype == np.uint16 else 255.0
        alpha = (arr[..., 3].astype(np.float32) / np.float32(top))
        rgb = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB)
    else:
        rgb = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)
    return decode_to_linear(np.ascontiguousarray(rgb)), alpha


def _decode_mask(data: bytes, where: str, what: str) -> np.ndarray:
    import cv2

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 2:
        raise InputError(f"{where}: the file is damaged ({what} cannot be decoded)")
    return arr.astype(np.float32) / np.float32(65535.0 if arr.dtype == np.uint16 else 255.0)


# ---------------------------------------------------------------------------------------------------
# Crash recovery


def config_dir() -> Path:
    """Where settings and the recovery file live (ICPORTRAIT_CONFIG_DIR overrides, e.g. for tests)."""
    env = os.environ.get("ICPORTRAIT_CONFIG_DIR")
    if env:
        return Path(env)
    if sys.platform == "win32":
        return Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / "IC-Portrait Studio"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "IC-Portrait Studio"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / APP_DIR_NAME


def autosave_path() -> Path:
    """The crash-recovery project the app rewrites (debounced) while a document has unsaved changes."""
    return config_dir() / "recovery" / f"autosave{EXTENSION}"


@dataclass(frozen=True)
class RecoveryInfo:
    path: Path
    saved: _dt.datetime
    title: str


def recovery_available() -> RecoveryInfo | None:
    """The autosave left by a session that did not close cleanly, if any (a quick look, no pixels read)."""
    p = autosave_path()
    if not p.is_file():
        return None
    title = "Untitled"
    with contextlib.suppress(Exception), zipfile.ZipFile(p) as zf:
        info = json.loads(zf.read("manifest.json")).get("document", {})
        title = os.path.basename(info.get("project_path") or info.get("source_path") or "") or title
    return RecoveryInfo(p, _dt.datetime.fromtimestamp(p.stat().st_mtime), title)


def discard_autosave() -> None:
    with contextlib.suppress(OSError):
        autosave_path().unlink()
