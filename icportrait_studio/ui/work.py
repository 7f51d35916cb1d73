"""Work the app's jobs run on the worker threads: plain arrays in, plain data out, no widgets.

Opening a photo or a project, importing a layer, encoding pixels for display, listing the backends,
rendering a request, analysing a face, warming the models up; and the outcomes they hand back to the
GUI thread (``jobs_bridge`` delivers them). Kept apart from the bridge and the renderer, which are the
Qt side.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from icportrait_studio.core.request import EditRequest
from icportrait_studio.jobs import WorkFn
from icportrait_studio.pipeline.base import SourceImage
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn

if TYPE_CHECKING:
    from icportrait_studio.imaging.display_profile import ScreenTransform

log = logging.getLogger(__name__)

# The open photo's colour profile as the screen needs it (``imaging.display_profile``), None for sRGB.
# One per process, as there is one document: set on the GUI thread before that document's first pixels
# are encoded, read by ``encode_display`` on the worker threads (a reference swap, atomic in Python).
_display_transform: ScreenTransform | None = None


def set_display_profile(icc: bytes | None, encoding: str = "srgb") -> None:
    """Show the pixels encoded from now on as an sRGB screen should show a photo with profile ``icc``."""
    global _display_transform
    from icportrait_studio.imaging.display_profile import display_transform

    _display_transform = display_transform(icc, encoding)


def display_rgb8(rgb_linear: np.ndarray) -> np.ndarray:
    """Linear float RGB (as the app holds it) -> 8-bit RGB as an sRGB screen should show the open photo's
    colours (its profile, ``set_display_profile``): the canvas layers and the diffusion previews."""
    from icportrait_studio.imaging.color import encode_from_linear

    transform = _display_transform
    if transform is not None and rgb_linear.ndim == 3 and rgb_linear.shape[2] == 3:
        return transform.from_linear(rgb_linear)
    return encode_from_linear(rgb_linear, 8)


def encode_display(rgb_linear: np.ndarray, alpha: np.ndarray | None = None,
                   mask: np.ndarray | None = None) -> np.ndarray:
    """Linear float RGB -> 8-bit sRGB pixels in Qt's native 32-bit layout (QImage.Format_RGB32, or
    Format_ARGB32_Premultiplied when there is alpha or a layer mask), which Qt paints without
    converting: a third faster per repaint than packed RGB, and repaints happen at drag rate. A photo
    tagged with another colour profile is shown in sRGB's colours (``set_display_profile``)."""
    import cv2

    rgb8 = display_rgb8(rgb_linear)
    native = cv2.cvtColor(rgb8, cv2.COLOR_RGB2BGRA if sys.byteorder == "little" else cv2.COLOR_RGB2RGBA)
    if alpha is None and mask is None:
        if sys.byteorder == "big":  # 0xffRRGGBB stored big-endian is A, R, G, B
            native = np.ascontiguousarray(np.roll(native, 1, axis=2))
        return native
    h, w = rgb8.shape[:2]
    a = np.ones((h, w), np.float32) if alpha is None else _fit(alpha, w, h)
    if mask is not None:
        a = a * _fit(mask.astype(np.float32), w, h)
    a8 = np.rint(np.clip(a, 0, 1) * 255).astype(np.uint8)
    native[..., :3] = cv2.multiply(native[..., :3], cv2.merge([a8, a8, a8]), scale=1 / 255)  # premultiply
    native[..., 3] = a8
    if sys.byteorder == "big":
        native = np.ascontiguousarray(np.roll(native, 1, axis=2))
    return native


def _fit(a: np.ndarray, w: int, h: int) -> np.ndarray:
    if a.shape[:2] == (h, w):
        return a
    import cv2

    return cv2.resize(np.ascontiguousarray(a, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


@dataclass
class RenderOutcome:
    """A finished render: the backend's result plus its display pixels, made on the worker thread."""

    request: EditRequest
    image: np.ndarray  # linear float32
    display: np.ndarray  # sRGB uint8 (h, w, 3|4)
    shading: np.ndarray | None
    info: dict
    analysis: AnalysisOutcome | None = None
    landmarks: np.ndarray | None = None  # (N, 3) where the face lies in ``image`` (moved by a view change)

    @property
    def nbytes(self) -> int:
        return int(self.image.nbytes + self.display.nbytes)


@dataclass
class AnalysisOutcome:
    """What the UI shows of a face analysis, already scaled to the document and turned into images."""

    summary: dict
    landmarks: np.ndarray | None  # (N, 2) document pixels
    edges: np.ndarray | None  # (E, 2) landmark index pairs
    normals_rgba: np.ndarray | None  # uint8, analysis working size
    matte_rgba: np.ndarray | None
    matte: np.ndarray | None = None  # float32 [0, 1] person matte, analysis working size (layer masks)
    face: np.ndarray | None = None  # float32 {0, 1} face-mesh coverage, analysis working size


@dataclass
class Proxies:
    """Smaller copies of the photo, made once on opening so no render has to shrink 12 MP again.

    ``analysis``: what the face analysis runs on, None for the photo itself (the app's proxies leave it
    None: a face small in its frame needs the full resolution); ``preview``: what interactive renders
    relight, at the preview size. (rgb, alpha) pairs; None when the photo itself is no bigger.
    """

    analysis: tuple[np.ndarray, np.ndarray | None] | None = None
    preview: tuple[np.ndarray, np.ndarray | None] | None = None


@dataclass
class OpenOutcome:
    loaded: object  # imaging.io.LoadedImage
    proxies: Proxies




PREVIEW_STEP_SIDE = 768


def open_work(path: str, encoding: str = "auto") -> WorkFn:
    def work(progress: ProgressFn, token: CancelToken) -> OpenOutcome:
        from icportrait_studio.imaging.io import load_image

        progress(Progress(0.1, "decoding"))
        loaded = load_image(path, encoding=encoding)
        token.raise_if_cancelled()
        proxies = make_proxies(loaded.rgb, loaded.alpha)
        progress(Progress(1.0, "decoded"))
        return OpenOutcome(loaded, proxies)

    return work


def _shrink(rgb: np.ndarray, alpha: np.ndarray | None, side: int) -> tuple[np.ndarray, np.ndarray | None] | None:
    h, w = rgb.shape[:2]
    if max(h, w) <= side:
        return None
    import cv2

    s = side / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return small, None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)


def make_proxies(rgb: np.ndarray, alpha: np.ndarray | None) -> Proxies:
    from icportrait_studio.core.request import PREVIEW_MAX_SIDE

    # no analysis proxy: a face small in its frame needs the full resolution (a full-length portrait's
    # face in a 768 px copy is too small to turn); the preview is made through a 768 px step (one pass
    # over the full photo at area quality, then a cheap one)
    mid = _shrink(rgb, alpha, PREVIEW_STEP_SIDE)
    return Proxies(None, _shrink(*(mid or (rgb, alpha)), PREVIEW_MAX_SIDE))


def project_work(path: str) -> WorkFn:
    def work(progress: ProgressFn, token: CancelToken) -> tuple:
        from icportrait_studio.core.project import load_project

        doc, history = load_project(path)
        return doc, history, make_proxies(doc.base, doc.alpha)

    return work


def import_work(path: str, size: tuple[int, int], icc: bytes | None = None, encoding: str = "srgb") -> WorkFn:
    """Load an image as a layer of a document of ``size`` whose profile is ``icc``: (rgb, alpha, display,
    note). Its colours are converted into the document's profile (``imaging.profile_convert``), as
    Photoshop converts what is placed; ``note`` says when a profile could not be read for that."""
    def work(progress: ProgressFn, token: CancelToken) -> tuple:
        import cv2

        from icportrait_studio.imaging.io import load_image
        from icportrait_studio.imaging.profile_convert import convert_layer

        loaded = load_image(path)
        rgb, alpha, note = loaded.rgb, loaded.alpha, None
        if encoding == "srgb" and loaded.encoding == "srgb":
            rgb, note = convert_layer(rgb, loaded.icc_profile, icc, loaded.bit_depth)
        if (rgb.shape[1], rgb.shape[0]) != size:  # stretched to the document, as a plain overlay layer
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            alpha = None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_AREA)
        return rgb, alpha, encode_display(rgb, None, alpha), note

    return work


def display_work(rgb: np.ndarray, alpha: np.ndarray | None, mask: np.ndarray | None = None) -> WorkFn:
    def work(progress: ProgressFn, token: CancelToken) -> np.ndarray:
        return encode_display(rgb, alpha, mask)

    return work


def _get_backend(name: str) -> object:
    """Resolved on the worker thread: the first call imports the backend's modules, off the GUI thread."""
    from icportrait_studio.pipeline.registry import get_backend

    return get_backend(name)


def backends_work(progress: ProgressFn, token: CancelToken) -> list[tuple[str, bool, str]]:
    """(name, available, reason) for every registered backend; availability checks may be slow."""
    from icportrait_studio.pipeline.registry import backend_names
    from icportrait_studio.plugins.registry import default_registry

    try:  # registers the diffusion backend (a cheap import: torch loads only when it runs)
        import icportrait_studio.model  # noqa: F401
    except Exception as exc:
        log.info("diffusion backend not offered: %s", exc)
    try:  # plugin backends: manifests only, their code loads when one is first used
        default_registry()
    except Exception as exc:
        log.warning("plugin backends not offered: %s", exc)
    entries = []
    for name in backend_names():
        try:
            ok, reason = _get_backend(name).available()  # type: ignore[attr-defined]
        except Exception as exc:  # a broken plugin backend is simply not offered
            ok, reason = False, str(exc)
        entries.append((name, bool(ok), str(reason)))
    return entries


def render_work(backend_name: str, request: EditRequest, source: SourceImage, doc_size: tuple[int, int],
                with_analysis: bool) -> WorkFn:
    def work(progress: ProgressFn, token: CancelToken) -> RenderOutcome:
        backend = _get_backend(backend_name)
        result = backend.run(request, source, progress, token)  # type: ignore[attr-defined]
        token.raise_if_cancelled()
        display = encode_display(result.image, result.alpha)
        analysis = analysis_outcome(backend, source, doc_size) if with_analysis else None
        return RenderOutcome(request, result.image, display, result.shading, dict(result.info), analysis,
                             result.landmarks)

    return work


def analysis_work(backend_name: str, source: SourceImage, doc_size: tuple[int, int]) -> WorkFn:
    def work(progress: ProgressFn, token: CancelToken) -> AnalysisOutcome | None:
        backend = _get_backend(backend_name)
        if not hasattr(backend, "analysis"):
            return None
        backend.analysis(source, progress)  # type: ignore[attr-defined]
        token.raise_if_cancelled()
        return analysis_outcome(backend, source, doc_size)

    return work


def analysis_outcome(backend: object, source: SourceImage, doc_size: tuple[int, int]) -> AnalysisOutcome | None:
    """The overlays and summary of a backend's (cached) analysis, scaled to the document."""
    if not hasattr(backend, "analysis"):
        return None
    fa = backend.analysis(source)  # type: ignore[attr-defined]
    landmarks = edges = None
    if fa.landmarks is not None:
        landmarks = fa.landmarks[:, :2] * np.float32(doc_size[0] / fa.image_size[0])
        edges = _mesh_edges()
    n = fa.normals if fa.shading_normals is None else fa.shading_normals  # what the lights are shaded with
    normals = np.dstack([np.clip((n + 1.0) * 127.5, 0, 255).astype(np.uint8),
                         np.where(fa.person, 230, 0).astype(np.uint8)])
    matte = np.zeros((*fa.matte.shape, 4), np.uint8)
    matte[..., 0], matte[..., 1], matte[..., 2] = 255, 70, 110
    matte[..., 3] = np.clip(fa.matte * 150, 0, 255).astype(np.uint8)
    return AnalysisOutcome(fa.summary(), landmarks, edges, normals, matte, fa.matte.astype(np.float32),
                           fa.face_mask.astype(np.float32))


_EDGES: np.ndarray | None = None


def _mesh_edges() -> np.ndarray:
    global _EDGES
    if _EDGES is None:
        from icportrait_studio.geometry.topology import face_topology

        tris = face_topology().triangles
        pairs = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
        _EDGES = np.unique(np.sort(pairs, axis=1), axis=0)
    return _EDGES


def warmup_work(progress: ProgressFn, token: CancelToken) -> None:
    """Load the face models before the first photo is opened, so opening feels instant."""
    from icportrait_studio.geometry import facemesh

    progress(Progress(0.2, "loading face models"))
    blank = np.zeros((64, 64, 3), np.uint8)
    facemesh.detect_faces(blank)
    token.raise_if_cancelled()
    facemesh.segment_person(blank)
    _mesh_edges()


def shading_rgba(shading: np.ndarray | None) -> np.ndarray | None:
    """The rig's shading as an opaque sRGB image for the 'shading only' overlay."""
    if shading is None:
        return None
    from icportrait_studio.imaging.color import encode_from_linear

    s = np.asarray(shading, np.float32)
    if s.ndim == 2:
        s = np.repeat(s[..., None], 3, axis=2)
    top = float(np.percentile(s, 99.5)) or 1.0
    rgb8 = encode_from_linear(s / np.float32(top), 8)
    return np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])


# ---------------------------------------------------------------------------------------------------
# The render flow for the open document
