"""The open document: the photo, the rig and view being edited, and the layer stack.

Qt-free on purpose: the project file writer, the tests and the UI all share this model, and the UI
only mirrors it on screen. Pixel arrays are treated as immutable values: a new render replaces a
layer's array instead of writing into it, so snapshots (for undo and for saving on the worker
thread) can hold plain references without copying hundreds of megabytes.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.view import ViewPose

LayerKind = Literal["base", "relit", "view", "imported"]
LAYER_KINDS: tuple[str, ...] = ("base", "relit", "view", "imported")
PixelQuality = Literal["preview", "full"]

_uids = itertools.count(1)


def default_rig() -> LightRig:
    """The rig a new document starts with: a soft key above-left and a weak fill (a loop light)."""
    return LightRig(
        lights=(
            Light(azimuth=-30.0, elevation=30.0, intensity=1.0, size=0.2),
            Light(azimuth=35.0, elevation=0.0, intensity=0.3, size=0.5),
        ),
        ambient=0.05,
        name="loop",
    )


@dataclass(frozen=True)
class LayerState:
    """An immutable picture of one layer, cheap to keep (pixel arrays are shared, not copied)."""

    uid: int
    name: str
    kind: LayerKind
    visible: bool
    opacity: float
    pixels: np.ndarray | None = field(compare=False, repr=False)
    mask: np.ndarray | None = field(compare=False, repr=False)
    quality: PixelQuality
    request_id: int


@dataclass
class Layer:
    """One entry of the layer stack.

    ``pixels`` is linear float32 HxWx3. A 'relit' or 'view' layer may briefly hold a smaller preview
    render (``quality == 'preview'``); whoever displays or flattens it scales it to the document size.
    ``mask`` (HxW float32 in [0, 1], any size) limits where the layer shows.
    """

    name: str
    kind: LayerKind
    pixels: np.ndarray | None = None
    visible: bool = True
    opacity: float = 1.0
    mask: np.ndarray | None = None
    quality: PixelQuality = "full"
    request_id: int = 0  # the EditRequest that rendered ``pixels`` (0 = not rendered by a backend)
    uid: int = field(default_factory=lambda: next(_uids))

    def __post_init__(self) -> None:
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"unknown layer kind {self.kind!r}")
        self.opacity = float(min(1.0, max(0.0, self.opacity)))

    def state(self) -> LayerState:
        return LayerState(self.uid, self.name, self.kind, self.visible, self.opacity, self.pixels, self.mask,
                          self.quality, self.request_id)

    @classmethod
    def from_state(cls, s: LayerState) -> Layer:
        return cls(name=s.name, kind=s.kind, pixels=s.pixels, visible=s.visible, opacity=s.opacity, mask=s.mask,
                   quality=s.quality, request_id=s.request_id, uid=s.uid)


@dataclass(frozen=True)
class DocState:
    """Everything undo/redo restores: the rig, the view, the backend and the layer stack."""

    rig: LightRig
    view: ViewPose
    backend: str
    layers: tuple[LayerState, ...]

    def layer(self, kind: str) -> LayerState | None:
        return next((s for s in self.layers if s.kind == kind), None)


@dataclass
class Document:
    """An open portrait. ``base`` is the photo (linear float32 HxWx3), never modified after loading."""

    base: np.ndarray
    alpha: np.ndarray | None = None
    icc_profile: bytes | None = None
    bit_depth: int = 8
    encoding: str = "srgb"  # how the photo's samples map to light ("srgb" or "linear"); exports keep it
    path: str | None = None  # the photo this document was made from
    project_path: str | None = None  # the .icps it was last saved to or opened from
    rig: LightRig = field(default_factory=default_rig)
    view: ViewPose = field(default_factory=ViewPose)
    backend: str = "physical"
    layers: list[Layer] = field(default_factory=list)
    dirty: bool = False
    analysis_info: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    # the landmarks the photo's file carried (an earlier edit moved the face there): analysed with them
    source_landmarks: np.ndarray | None = field(default=None, repr=False)
    # where the face lies in the relit layer's full render (moved by the view), set on the copy an
    # export writes: the exported file carries it so a later edit of that file need not re-detect the face
    face_landmarks: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.base.ndim != 3 or self.base.shape[2] != 3:
            raise ValueError(f"base must be HxWx3, got {self.base.shape}")
        if not self.layers:
            self.layers = [Layer("Original", "base", self.base), Layer("Relit", "relit")]

    @classmethod
    def from_loaded(cls, loaded: object, *, rig: LightRig | None = None) -> Document:
        """Build from an ``imaging.io.LoadedImage`` (duck-typed so core stays free of the decoders)."""
        return cls(
            base=loaded.rgb,  # type: ignore[attr-defined]
            alpha=loaded.alpha,  # type: ignore[attr-defined]
            icc_profile=loaded.icc_profile,  # type: ignore[attr-defined]
            bit_depth=loaded.bit_depth,  # type: ignore[attr-defined]
            encoding=getattr(loaded, "encoding", "srgb"),
            path=loaded.path,  # type: ignore[attr-defined]
            rig=rig or default_rig(),
            warnings=list(loaded.warnings),  # type: ignore[attr-defined]
            source_landmarks=getattr(loaded, "landmarks", None),
        )

    # --- description -------------------------------------------------------------------------------

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.base.shape[1]), int(self.base.shape[0])

    @property
    def tone(self) -> float | None:
        """The profile's gamma the backends relight in, when sRGB's curve is wrong for it (ProPhoto RGB)."""
        from icportrait_studio.imaging.scene_tone import scene_gamma

        return scene_gamma(self.icc_profile, self.encoding)

    @property
    def title(self) -> str:
        path = self.project_path or self.path
        return os.path.basename(path) if path else "Untitled"

    def layer_by_uid(self, uid: int) -> Layer | None:
        return next((layer for layer in self.layers if layer.uid == uid), None)

    def layer_of_kind(self, kind: str) -> Layer | None:
        return next((layer for layer in self.layers if layer.kind == kind), None)

    @property
    def relit_layer(self) -> Layer:
        layer = self.layer_of_kind("relit")
        if layer is None:  # a project saved without one: recreate it on top of the base
            layer = Layer("Relit", "relit")
            self.layers.insert(1, layer)
        return layer

    # --- edits ---------------------------------------------------------------------------------------

    def set_rig(self, rig: LightRig) -> bool:
        """Change the rig; True when it actually changed (and the document became dirty)."""
        if rig == self.rig:
            return False
        self.rig = rig
        self.dirty = True
        return True

    def set_view(self, view: ViewPose) -> bool:
        if view == self.view:
            return False
        self.view = view
        self.dirty = True
        return True

    def set_relit(self, pixels: np.ndarray | None, *, quality: PixelQuality = "full", request_id: int = 0,
                  kind: LayerKind = "relit") -> Layer:
        """Replace a rendered layer's pixels (the relit layer, or the view layer once that lands)."""
        layer = self.relit_layer if kind == "relit" else self.layer_of_kind(kind)
        if layer is None:
            layer = Layer(kind.capitalize(), kind)
            self.layers.append(layer)
        layer.pixels, layer.quality, layer.request_id = pixels, quality, request_id
        return layer

    def add_layer(self, layer: Layer, index: int | None = None) -> None:
        self.layers.insert(len(self.layers) if index is None else index, layer)
        self.dirty = True

    def remove_layer(self, uid: int) -> Layer | None:
        layer = self.layer_by_uid(uid)
        if layer is None or layer.kind == "base":
            return None
        self.layers.remove(layer)
        self.dirty = True
        return layer

    # --- undo support -------------------------------------------------------------------------------

    def snapshot(self) -> DocState:
        return DocState(self.rig, self.view, self.backend, tuple(layer.state() for layer in self.layers))

    def restore(self, state: DocState) -> None:
        """Put back a snapshot exactly: rig, view, backend, and every layer with its pixels."""
        self.rig, self.view, self.backend = state.rig, state.view, state.backend
        self.layers = [Layer.from_state(s) for s in state.layers]
        self.dirty = True

    # --- output ----------------------------------------------------------------------------------------

    def export_landmarks(self) -> np.ndarray | None:
        """``face_landmarks`` when the flattened picture is the relit layer alone (visible, opaque, no mask,
        nothing visible above it); otherwise None: a blend with the unturned photo has no one face."""
        relit = self.layer_of_kind("relit")
        if self.face_landmarks is None or relit is None or relit.pixels is None:
            return None
        if not relit.visible or relit.opacity < 1.0 or relit.mask is not None or relit.quality != "full":
            return None
        above = self.layers[self.layers.index(relit) + 1:]
        if any(la.visible and la.opacity > 0.0 and la.pixels is not None for la in above):
            return None
        return self.face_landmarks

    def flatten(self) -> np.ndarray:
        """The visible stack composited at full size, in linear light (what export writes).

        Layers are blended in order with their opacity and mask; a layer whose pixels are a smaller
        preview is scaled up (the caller renders a full one first when it can).
        """
        h, w = self.base.shape[:2]
        out: np.ndarray | None = None
        for layer in self.layers:
            if not layer.visible or layer.opacity <= 0.0 or layer.pixels is None:
                continue
            px = _fit(layer.pixels, w, h)
            weight = np.float32(layer.opacity)
            if layer.mask is not None:
                weight = _fit(layer.mask.astype(np.float32), w, h)[..., None] * np.float32(layer.opacity)
            if out is None:
                out = px.astype(np.float32, copy=True) if np.all(weight == 1) else px * weight
            else:
                out = out + (px - out) * weight
        return out if out is not None else np.zeros_like(self.base)


def _fit(a: np.ndarray, w: int, h: int) -> np.ndarray:
    """Scale an image (or mask) to (w, h) when it is a preview of another size."""
    if a.shape[1] == w and a.shape[0] == h:
        return a
    import cv2  # only previews need it; keeps importing the document model light

    return cv2.resize(np.ascontiguousarray(a), (w, h), interpolation=cv2.INTER_LINEAR)
