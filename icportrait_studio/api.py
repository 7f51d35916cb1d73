"""The small public Python API: relight a photo (array or file) with a rig, in a few lines.

    from icportrait_studio import api
    rig = api.rig(api.Light(azimuth=50, elevation=10))
    result = api.relight_file("portrait.jpg", "out.png", rig)
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.png_cache import digest
from icportrait_studio.core.presets import load_preset
from icportrait_studio.core.request import EditRequest
from icportrait_studio.core.view import ViewPose
from icportrait_studio.pipeline.base import SourceImage
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn, no_progress
from icportrait_studio.pipeline.registry import get_backend

__all__ = ["Light", "LightRig", "RelightOutcome", "ViewPose", "preset", "relight", "relight_file", "rig"]


def rig(*lights: Light, ambient: float = 0.05, keep_original: float = 0.0, **kwargs) -> LightRig:
    return LightRig(lights=tuple(lights), ambient=ambient, keep_original=keep_original, **kwargs)


def preset(name: str) -> LightRig:
    return load_preset(name).rig


@dataclass
class RelightOutcome:
    image: np.ndarray  # linear float32 HxWx3
    alpha: np.ndarray | None
    info: dict = field(default_factory=dict)
    landmarks: np.ndarray | None = None  # the face's landmarks in ``image`` (N×3 pixels), if a face was found


# Results this process made, by a fingerprint of their pixels → the landmarks where the face lies in
# them: fed back in (a turn, then its inverse), a result is analysed with those instead of a detection
# that under-reads a synthesised turn. The in-memory twin of the landmarks a PNG result carries.
_PRODUCED: OrderedDict[str, np.ndarray] = OrderedDict()
_PRODUCED_MAX = 16
_PRODUCED_LOCK = threading.Lock()


def _fingerprint(rgb: np.ndarray) -> str:
    """A digest of every 4th pixel in each direction (and the shape): the same picture, not a crop,
    resize or repaint of it; ~20 ms for 16 MP. It names the image for the backend's analysis cache and
    recognises a result of this process passed back."""
    return digest(rgb[::4, ::4])


def _remember(key: str, landmarks: np.ndarray | None) -> None:
    if landmarks is None:
        return
    with _PRODUCED_LOCK:
        _PRODUCED[key] = np.array(landmarks, np.float32)
        _PRODUCED.move_to_end(key)
        while len(_PRODUCED) > _PRODUCED_MAX:
            _PRODUCED.popitem(last=False)


def _recall(key: str) -> np.ndarray | None:
    with _PRODUCED_LOCK:
        hit = _PRODUCED.get(key)
        return None if hit is None else hit.copy()


def relight(rgb_linear: np.ndarray, light_rig: LightRig, *, alpha: np.ndarray | None = None,
            view: ViewPose | None = None, backend: str = "physical", image_id: str | None = None,
            landmarks: np.ndarray | None = None, tone: float | None = None, progress: ProgressFn | None = None,
            cancel: CancelToken | None = None) -> RelightOutcome:
    """Relight a linear-RGB float32 image; repeated calls on the same image reuse its analysis.

    ``landmarks`` (N×3 pixels) skip the face detection: pass the ones a previous result carried. A
    result of this process passed back unchanged (``relight(out.image, …)``) is recognised and uses
    its own landmarks without being asked (``info["landmarks_carried"]``). ``tone``: the gamma of the
    photo's profile when sRGB's curve decoded it wrongly (``imaging.scene_tone.scene_gamma``).
    ``progress`` hears the backend's stages; ``cancel`` stops it between them (``CancelledError``).
    """
    rgb = rgb_linear.astype(np.float32, copy=False)
    fingerprint = _fingerprint(rgb)
    recalled = landmarks is None and (landmarks := _recall(fingerprint)) is not None
    sid = image_id or fingerprint + ("|recalled" if recalled else "")
    source = SourceImage(sid, rgb, alpha, landmarks, tone)
    request = EditRequest(image_id=source.image_id, rig=light_rig, view=view or ViewPose(), backend=backend)
    result = get_backend(backend).run(request, source, progress or no_progress, cancel or CancelToken())
    _remember(_fingerprint(result.image), result.landmarks)
    info = dict(result.info)
    info["landmarks_carried"] = landmarks is not None
    return RelightOutcome(result.image, result.alpha, info, result.landmarks)


def relight_file(input_path: str | Path, output_path: str | Path, light_rig: LightRig, *,
                 view: ViewPose | None = None, backend: str = "physical", encoding: str = "auto",
                 to_srgb: bool = False, bit_depth: int | None = None, keep_analysis: bool = True,
                 progress: ProgressFn | None = None, cancel: CancelToken | None = None) -> RelightOutcome:
    """Load, relight and atomically save; the output keeps alpha, ICC profile and (for TIFF) 16 bits.

    ``encoding`` ("auto", "srgb" or "linear") says how the input's values map to light; the output is
    written in the same resolved encoding (a linear input comes out linear), reported as ``info["encoding"]``.
    ``to_srgb`` writes it converted to sRGB instead, sRGB-encoded with sRGB's profile (for the web).
    ``bit_depth`` 8 or 16 (None: 16 for TIFF, else 8). ``keep_analysis=False`` lets the backend forget
    this photo afterwards: a batch's one-shot photos must not push out the analysis of the photo open in
    the app, nor hold the memory of their own. ``progress`` hears loading (to 0.1), the backend's stages
    (to 0.9) and saving; ``cancel`` stops it before the file is written.
    """
    from icportrait_studio.imaging.io import load_image, save_image
    from icportrait_studio.imaging.scene_tone import scene_gamma

    report = progress or no_progress
    report(Progress(0.0, "loading"))
    t0 = time.perf_counter()
    loaded = load_image(input_path, encoding=encoding)
    t_load = time.perf_counter() - t0
    # the analysis cache is keyed by the image: the same path rewritten since (a chained edit) is a new image
    st = os.stat(input_path)
    image_id = (f"{input_path}|{st.st_mtime_ns}|{st.st_size}|{_fingerprint(loaded.rgb)}"
                f"|{'carried' if loaded.landmarks is not None else 'detected'}")
    tone = scene_gamma(loaded.icc_profile, loaded.encoding)
    try:
        out = relight(loaded.rgb, light_rig, alpha=loaded.alpha, view=view, backend=backend, image_id=image_id,
                      landmarks=loaded.landmarks, tone=tone, cancel=cancel,
                      progress=lambda p: report(Progress(0.1 + 0.8 * p.fraction, p.stage)))
    finally:
        forget = None if keep_analysis else getattr(get_backend(backend), "forget", None)
        if forget is not None:
            forget(image_id)
    if cancel is not None:
        cancel.raise_if_cancelled()
    report(Progress(0.9, "saving"))
    t1 = time.perf_counter()
    image, icc, written_as, note = out.image, loaded.icc_profile, loaded.encoding, None
    if to_srgb:
        from icportrait_studio.imaging.profile_convert import as_srgb

        (image, icc, note), written_as = as_srgb(image, icc, loaded.encoding), "srgb"
    save_image(output_path, image, alpha=out.alpha, icc_profile=icc, encoding=written_as,
               bit_depth=bit_depth or (16 if Path(output_path).suffix.lower() in (".tif", ".tiff") else None),
               landmarks=out.landmarks)
    out.info.setdefault("timings_ms", {}).update({"load": round(t_load * 1000, 1),
                                                  "save": round((time.perf_counter() - t1) * 1000, 1)})
    out.info["warnings"] = list(loaded.warnings) + list(out.info.get("warnings", [])) + ([note] if note else [])
    out.info["encoding"] = loaded.encoding
    if to_srgb:
        out.info["written_as"] = "sRGB"
    if tone is not None:
        out.info["relit_at_gamma"] = round(tone, 3)  # the profile's own linear light (imaging/scene_tone.py)
    out.info["landmarks_carried"] = loaded.landmarks is not None
    return out
