"""Layered export through exporter plugins, and the helpers those plugins share.

How the app calls it (the CLI and the bridge do the same)::

    from icportrait_studio.plugins.export import document_from_app, export_document
    export_document("portrait.psd", document_from_app(doc))      # doc: core.document.Document

``export_document`` picks the exporter plugin by the file's extension; ``read_flat`` reads a file
back as one image (used by "Edit in…" to bring an editor's save back as a new layer).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from icportrait_studio.errors import InputError
from icportrait_studio.imaging.png_chunks import insert_png_icc
from icportrait_studio.plugins.api import ExportDocument, ExportLayer, FlatImage, PluginError
from icportrait_studio.plugins.manifest import Contribution
from icportrait_studio.plugins.registry import PluginRegistry, default_registry


class PluginExporter:
    """An exporter contribution, loaded on first use; plugin failures disable the plugin."""

    def __init__(self, contribution: Contribution, registry: PluginRegistry) -> None:
        self.contribution = contribution
        self.registry = registry
        self._impl: Any = None

    @property
    def id(self) -> str:
        return self.contribution.id

    @property
    def name(self) -> str:
        return self.contribution.name

    @property
    def extensions(self) -> tuple[str, ...]:
        return tuple(str(e).lower() for e in self.contribution.data["extensions"])

    def handles(self, filename: str) -> bool:
        name = filename.lower()
        return any(name.endswith(ext) and len(name) > len(ext) for ext in self.extensions)

    def _instance(self) -> Any:
        if self._impl is None:
            self._impl = self.registry.instantiate(self.contribution)
        return self._impl

    def write(self, path: str | os.PathLike[str], doc: ExportDocument) -> None:
        impl = self._instance()
        self.registry.guarded(self.contribution.plugin, impl.write, Path(path), doc)

    def read_flat(self, path: str | os.PathLike[str]) -> FlatImage:
        impl = self._instance()
        if not hasattr(impl, "read_flat"):
            raise PluginError(f"the {self.name} exporter cannot read files back")
        return self.registry.guarded(self.contribution.plugin, impl.read_flat, Path(path))


def exporters(registry: PluginRegistry | None = None) -> list[PluginExporter]:
    reg = registry or default_registry()
    return [PluginExporter(c, reg) for c in reg.contributions("exporters")]


def exporter_for(path: str | os.PathLike[str], registry: PluginRegistry | None = None) -> PluginExporter:
    """The first enabled exporter that handles the file's extension."""
    fname, ext = Path(path).name.lower(), Path(path).suffix.lower()
    found = exporters(registry)
    for exp in found:  # by the end of the name, so two-part extensions like ".layers.json" work
        if exp.handles(fname):
            return exp
    known = sorted({e for exp in found for e in exp.extensions})
    raise InputError(f"no exporter for '{ext or Path(path).name}' files; available: {', '.join(known) or 'none'}")


def export_document(path: str | os.PathLike[str], doc: ExportDocument,
                    registry: PluginRegistry | None = None) -> Path:
    target = Path(path)
    exporter_for(target, registry).write(target, doc)
    return target


def read_flat(path: str | os.PathLike[str], registry: PluginRegistry | None = None) -> FlatImage:
    """A file as one flattened linear image: PSD/ORA through their plugins, the rest through imaging.io."""
    fname = Path(path).name.lower()
    for exp in exporters(registry):
        if exp.handles(fname) and exp.contribution.data.get("reads", False):
            return exp.read_flat(path)
    from icportrait_studio.imaging.io import load_image

    loaded = load_image(path)
    return FlatImage(loaded.rgb, loaded.alpha, loaded.bit_depth, loaded.icc_profile, list(loaded.warnings))


def atomic_write_file(path: str | os.PathLike[str], write: Callable[[str], object], *, suffix: str) -> None:
    """``imaging.atomic.atomic_write`` for export plugins: the file appears whole or not at all, with
    the permissions any saved file gets."""
    from icportrait_studio.imaging.atomic import atomic_write

    atomic_write(Path(path), write, suffix=suffix)


# --- building documents -------------------------------------------------------------------------------


def fit(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale a preview-sized layer (or mask) to the document size."""
    if a.shape[1] == w and a.shape[0] == h:
        return a
    return cv2.resize(np.ascontiguousarray(a, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def shading_layer(shading: np.ndarray, w: int, h: int, *, visible: bool = False) -> ExportLayer:
    """The target shading as a viewable layer: scaled to the document and normalised so its bright end
    sits at 1 (the raw values are light multipliers, often above 1). Hidden by default: it is a
    retouching aid (e.g. a Multiply or Soft Light layer), not part of the picture."""
    s = fit(np.nan_to_num(shading.astype(np.float32)), w, h)
    if s.ndim == 2:
        s = np.repeat(s[..., None], 3, axis=2)
    top = float(np.percentile(s, 99.5)) if s.size else 1.0
    s = np.clip(s / max(top, 1e-6), 0.0, 1.0).astype(np.float32)
    return ExportLayer("Shading", s, visible=visible, kind="shading")


def build_document(original: np.ndarray, *, relit: np.ndarray | None = None, shading: np.ndarray | None = None,
                   view: np.ndarray | None = None, alpha: np.ndarray | None = None,
                   icc_profile: bytes | None = None, bit_depth: int = 8) -> ExportDocument:
    """The standard stack the CLI and the bridge export: Original, Relit, Shading (hidden), View."""
    h, w = original.shape[:2]
    layers = [ExportLayer("Original", original, alpha, kind="base")]
    if relit is not None:
        layers.append(ExportLayer("Relit", fit(relit, w, h), None if alpha is None else alpha, kind="relit"))
    if shading is not None:
        layers.append(shading_layer(shading, w, h))
    if view is not None:
        layers.append(ExportLayer("View", fit(view, w, h), None if alpha is None else alpha, kind="view"))
    return ExportDocument((w, h), layers, icc_profile, bit_depth)


def document_from_app(doc: Any) -> ExportDocument:
    """Adapt the app's ``core.document.Document`` (duck-typed: base, alpha, icc_profile, bit_depth,
    layers with name/kind/pixels/visible/opacity/mask). Preview-sized layers are scaled up, masks become
    layer alpha, layers without pixels are skipped."""
    w, h = int(doc.base.shape[1]), int(doc.base.shape[0])
    layers: list[ExportLayer] = []
    for layer in doc.layers:
        if layer.pixels is None:
            continue
        alpha = doc.alpha if layer.kind in ("base", "relit", "view") else None
        if getattr(layer, "mask", None) is not None:
            mask = fit(np.asarray(layer.mask, np.float32), w, h)
            alpha = mask if alpha is None else alpha * mask
        layers.append(ExportLayer(layer.name, fit(layer.pixels, w, h), alpha, layer.visible, layer.opacity,
                                  layer.kind))
    # layered files hold sRGB-encoded layers: a linear photo's profile would mislabel them (untagged = sRGB)
    icc = doc.icc_profile if getattr(doc, "encoding", "srgb") == "srgb" else None
    return ExportDocument((w, h), layers, icc, 16 if doc.bit_depth == 16 else 8)


# --- encoding helpers shared by the exporter plugins ---------------------------------------------------


def encode_rgba(rgb_linear: np.ndarray, alpha: np.ndarray | None, bit_depth: int) -> np.ndarray:
    """sRGB-encoded uint8/uint16 HxWx3 (or HxWx4 with alpha)."""
    from icportrait_studio.imaging.color import encode_from_linear

    color = encode_from_linear(rgb_linear, bit_depth)
    if alpha is None:
        return color
    top = 255 if bit_depth == 8 else 65535
    a = np.rint(np.clip(np.nan_to_num(alpha, nan=0.0), 0, 1) * top).astype(color.dtype)
    return np.concatenate([color, a[..., None]], axis=2)


def encode_png(rgb_linear: np.ndarray, alpha: np.ndarray | None = None, *, bit_depth: int = 8,
               icc_profile: bytes | None = None) -> bytes:
    """A PNG in memory (8 or 16 bits, optional alpha and ICC profile)."""
    arr = encode_rgba(rgb_linear, alpha, bit_depth)
    code = cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR
    ok, buf = cv2.imencode(".png", cv2.cvtColor(arr, code), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise OSError("the PNG encoder failed")
    data = buf.tobytes()
    return insert_png_icc(data, icc_profile) if icc_profile else data


def decode_png(data: bytes) -> tuple[np.ndarray, np.ndarray | None, int]:
    """PNG bytes -> (linear rgb, alpha or None, bit depth)."""
    from icportrait_studio.imaging.color import decode_to_linear

    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise InputError("a PNG inside the file is damaged")
    depth = 16 if arr.dtype == np.uint16 else 8
    if arr.ndim == 2:
        arr = cv2.cvtColor(arr, cv2.COLOR_GRAY2BGR)
    alpha = None
    if arr.shape[2] == 4:
        alpha = arr[..., 3].astype(np.float32) / np.float32(65535.0 if depth == 16 else 255.0)
        arr = arr[..., :3]
    rgb = decode_to_linear(np.ascontiguousarray(cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)))
    return rgb, alpha, depth
