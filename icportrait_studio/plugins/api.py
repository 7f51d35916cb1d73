"""What a plugin sees: the API version, the layered-document protocol exporters write, and errors.

The exporters work on :class:`ExportDocument`, a small Qt-free description of a layer stack, rather
than on the app's ``core.document.Document``: the CLI, the live bridge and the desktop app all
build one, and a plugin written against it never breaks when the app's own model changes.
Pixels are linear-light float32, the engine's working space; exporters encode them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from icportrait_studio.errors import ICPortraitError

API_VERSION = "1.0"
"""Plugins declare the API version they were written for; the major part must match, and the minor
part must not be newer than this one (a 1.2 plugin may use things a 1.0 app does not have)."""

ENTRY_POINT_GROUP = "icportrait_studio.plugins"
CONTRIBUTION_KINDS = ("exporters", "editor_bridges", "rig_presets", "backends")


class PluginError(ICPortraitError):
    """A plugin failed or is disabled; the message names the plugin and is shown to the user."""


@dataclass
class ExportLayer:
    """One layer to write: linear float32 HxWx3 pixels, optional straight alpha (HxW in [0, 1])."""

    name: str
    pixels: np.ndarray
    alpha: np.ndarray | None = None
    visible: bool = True
    opacity: float = 1.0
    kind: str = "imported"  # a hint: 'base', 'relit', 'shading', 'view' or 'imported'

    def __post_init__(self) -> None:
        px = np.asarray(self.pixels)
        if px.ndim != 3 or px.shape[2] != 3 or px.shape[0] == 0 or px.shape[1] == 0:
            raise ValueError(f"layer {self.name!r}: pixels must be HxWx3, got {px.shape}")
        self.pixels = px.astype(np.float32, copy=False)
        if self.alpha is not None:
            a = np.asarray(self.alpha, dtype=np.float32)
            if a.shape != px.shape[:2]:
                raise ValueError(f"layer {self.name!r}: alpha must be {px.shape[:2]}, got {a.shape}")
            self.alpha = a
        self.opacity = float(min(1.0, max(0.0, self.opacity)))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


@dataclass
class ExportDocument:
    """A layer stack, bottom layer first, all layers at the document size."""

    size: tuple[int, int]  # (width, height)
    layers: list[ExportLayer]
    icc_profile: bytes | None = None  # None means sRGB
    bit_depth: int = 8  # what the source had; exporters that can store 16 bits use it

    def __post_init__(self) -> None:
        if not self.layers:
            raise ValueError("an export document needs at least one layer")
        if self.bit_depth not in (8, 16):
            raise ValueError(f"bit_depth must be 8 or 16, got {self.bit_depth}")
        self.size = (int(self.size[0]), int(self.size[1]))
        for layer in self.layers:
            if layer.size != self.size:
                raise ValueError(f"layer {layer.name!r} is {layer.size}, the document is {self.size}")

    @classmethod
    def from_layers(cls, layers: Sequence[ExportLayer], *, icc_profile: bytes | None = None,
                    bit_depth: int = 8) -> ExportDocument:
        """The document size is the first (bottom) layer's size."""
        layers = list(layers)
        if not layers:
            raise ValueError("an export document needs at least one layer")
        return cls(layers[0].size, layers, icc_profile, bit_depth)

    def flatten(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Composite the visible layers ("over", straight alpha, in linear light like the app's canvas).

        Returns (rgb, alpha); alpha is None when the result is opaque everywhere.
        """
        w, h = self.size
        color = np.zeros((h, w, 3), np.float32)
        cover = np.zeros((h, w), np.float32)
        for layer in self.layers:
            if not layer.visible or layer.opacity <= 0.0:
                continue
            a = np.full((h, w), np.float32(layer.opacity)) if layer.alpha is None else layer.alpha * layer.opacity
            out_a = a + cover * (1.0 - a)
            num = layer.pixels * a[..., None] + color * (cover * (1.0 - a))[..., None]
            color = np.where(out_a[..., None] > 0, num / np.maximum(out_a, 1e-8)[..., None], 0).astype(np.float32)
            cover = out_a
        return color, (None if bool(np.all(cover >= 1.0 - 1e-6)) else cover)


@dataclass
class FlatImage:
    """A file read back as one flattened image (what an edited file contributes as a new layer)."""

    rgb: np.ndarray  # linear float32 HxWx3
    alpha: np.ndarray | None = None
    bit_depth: int = 8
    icc_profile: bytes | None = None
    warnings: list[str] = field(default_factory=list)


@runtime_checkable
class Exporter(Protocol):
    """A file format contributed by a plugin. ``write`` must be atomic (a reader never sees half a file)."""

    def write(self, path: Path, doc: ExportDocument) -> None:
        ...


@runtime_checkable
class Reader(Protocol):
    """An exporter that can also read its format back, flattened (needed for "Edit in…" round trips)."""

    def read_flat(self, path: Path) -> FlatImage:
        ...
