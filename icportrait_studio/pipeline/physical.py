"""The physical backend: CPU only, no downloads, interactive speed. The default.

Analysis (face mesh, matte, geometry) and the rig-independent part of relighting are cached per
image, so dragging a light only re-renders shading at a few hundred pixels and applies it.

A request with a view change re-poses and relights in the same job. The relight happens in the
photo's own frame, before the warp carries it to the new view: with the head turned by R, a light
fixed to the camera at direction l reaches the head from R⁻¹·l (and the static shoulders from l),
while a light that follows the head reaches it from l (and the shoulders from R·l). The two gain
fields are blended by the warp's rigidity map, then the warp moves the relit head. The view's
geometry (refined matte, layers, camera) is cached per image and quality like the relight context.

Full-quality results carry ``identity_distance``: the face-embedding distance between the input and
the result (see ``icportrait_studio.identity``), when the model is available.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.request import EditRequest
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import InputError
from icportrait_studio.geometry.analysis import FaceAnalysis, analyze
from icportrait_studio.geometry.camera import rotate_rig, rotation
from icportrait_studio.geometry.head_split import body_beside_head
from icportrait_studio.geometry.view_layers import (
    Layers,
    composite,
    make_layers,
    remap_small,
    sample_box,
    warp_channel,
)
from icportrait_studio.geometry.view_setup import warp_geometry
from icportrait_studio.geometry.view_warp import WarpGeometry, backward_warp, transform_points
from icportrait_studio.imaging.scene_tone import from_scene_linear, to_scene_linear
from icportrait_studio.lighting.catchlights import move_catchlights
from icportrait_studio.lighting.relight import RelightContext, apply_gain, gain_maps, prepare, relight_image
from icportrait_studio.pipeline.base import Result, SourceImage
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn, no_progress

SHADING_SIDE = {"preview": 192, "full": 320}
VIEW_SIDE = {"preview": 256, "full": None}  # warp working size (None: the analysis' geometry size)
PREPARE_MAX_SIDE = 1024
MIN_IMAGE_SIDE = 8  # pixels: smaller images have nothing to relight (a 1-pixel one broke the geometry)
VIEW_FACE_MIN = 40.0  # working pixels across the face below which a turn is refused (it would be a smear)
CACHE_IMAGES = 4


def why_not_turnable(analysis: FaceAnalysis) -> str | None:
    """Why the head in ``analysis`` cannot be turned (no face; a face too small to turn without a smear),
    or None when it can. The one place that decides it: the backend relights such a photo unturned, and
    ``icportrait synth`` skips it (its flow would say "turned" under an unturned target)."""
    if analysis.landmarks is None:
        return "no face found"
    if analysis.face_width < VIEW_FACE_MIN:
        return (f"the face is too small to turn ({analysis.face_width:.0f} px across, {VIEW_FACE_MIN:.0f} "
                "needed; crop closer or use a larger photo)")
    return None


@dataclass
class ViewContext:
    """What re-posing one photo at one quality needs, whatever the angles and the rig."""

    geometry: WarpGeometry
    layers: Layers  # at the rendered size
    _rigidity: dict[tuple[int, int], np.ndarray] = field(default_factory=dict)

    def rigidity_at(self, size: tuple[int, int]) -> np.ndarray:
        """The rigidity resampled to a relight context's shading ``size`` (w, h), memoised."""
        r = self._rigidity.get(size)
        if r is None:
            r = cv2.resize(self.geometry.rigidity, size, interpolation=cv2.INTER_AREA)
            self._rigidity[size] = r
        return r


def _is_passthrough(rig: LightRig) -> bool:
    """A rig that leaves the photo's light as it is (a pure view change)."""
    return rig.keep_original >= 1.0


class PhysicalBackend:
    name = "physical"

    def __init__(self, *, identity_check: bool = True) -> None:
        self.identity_check = identity_check
        self._analyses: OrderedDict[str, FaceAnalysis] = OrderedDict()
        self._contexts: OrderedDict[tuple, RelightContext] = OrderedDict()  # (id, side, limit, size, tone)
        self._sized_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._views: OrderedDict[tuple, ViewContext] = OrderedDict()
        self._embeddings: OrderedDict[str, np.ndarray | None] = OrderedDict()
        self._bodies: OrderedDict[str, np.ndarray | None] = OrderedDict()  # collar splits, one per photo
        self._distances: OrderedDict[tuple, float | None] = OrderedDict()
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        return True, "always available (CPU)"

    def forget(self, image_id: str) -> None:
        with self._lock:
            self._analyses.pop(image_id, None)
            self._embeddings.pop(image_id, None)
            self._bodies.pop(image_id, None)
            for cache in (self._contexts, self._sized_cache, self._views, self._distances):
                for key in [k for k in cache if k[0] == image_id]:
                    del cache[key]

    @staticmethod
    def _put(cache: OrderedDict, key, value, limit: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)

    def analysis(self, source: SourceImage, progress: ProgressFn = no_progress) -> FaceAnalysis:
        with self._lock:
            cached = self._analyses.get(source.image_id)
            if cached is not None:
                self._analyses.move_to_end(source.image_id)
                return cached
        progress(Progress(0.05, "analysing face"))
        result = analyze(source.rgb, landmarks=source.landmarks)
        with self._lock:
            self._put(self._analyses, source.image_id, result, CACHE_IMAGES)
        return result

    def context(self, source: SourceImage, analysis: FaceAnalysis, side: int, limit: int | None = None
                ) -> RelightContext:
        key = (source.image_id, side, limit, analysis.image_size, source.tone)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is not None:
                self._contexts.move_to_end(key)
                return ctx
        # prepare() works at a few hundred pixels: hand it a ≤1024 px copy, not a 16 MP photo (more where a
        # small face raised the working sizes)
        rgb = self._sized(source, round(PREPARE_MAX_SIDE * analysis.detail))[0]
        ctx = prepare(self._in_scene(source, rgb), analysis, side=side, limit=limit)
        with self._lock:
            self._put(self._contexts, key, ctx, CACHE_IMAGES * 2)
        return ctx

    def view_context(self, source: SourceImage, analysis: FaceAnalysis, quality: str, rgb: np.ndarray) -> ViewContext:
        """The warp geometry and layers for one photo at one quality (cached)."""
        key = (source.image_id, quality, rgb.shape, source.tone)
        with self._lock:
            hit = self._views.get(key)
            if hit is not None:
                self._views.move_to_end(key)
                return hit
        side = VIEW_SIDE[quality]
        if side is not None:  # grown for a small face, but never finer than the image it renders
            side = min(round(side * analysis.detail), max(side, *rgb.shape[:2]))
        geom = warp_geometry(analysis, side, body=self._body(source, analysis, rgb))
        size = (rgb.shape[1], rgb.shape[0])
        matte = cv2.resize(geom.matte, size, interpolation=cv2.INTER_LINEAR)
        keep = cv2.resize(geom.keep_alpha, size, interpolation=cv2.INTER_LINEAR)
        face_px = analysis.face_width * rgb.shape[1] / analysis.geo_size[0] if analysis.has_face else None
        layers = make_layers(rgb, matte, keep, work_side=round(256 * analysis.detail), face_width=face_px)
        vctx = ViewContext(geometry=geom, layers=layers)
        with self._lock:
            self._put(self._views, key, vctx, CACHE_IMAGES * 2)
        return vctx

    def _body(self, source: SourceImage, analysis: FaceAnalysis, rgb: np.ndarray) -> np.ndarray | None:
        """What beside the jaw is body (``head_split``), split once per photo: it is computed at the
        analysis' geometry size, so the preview's and the full quality's view geometry share it."""
        with self._lock:
            if source.image_id in self._bodies:
                return self._bodies[source.image_id]
        body = body_beside_head(rgb, analysis)
        with self._lock:
            self._put(self._bodies, source.image_id, body, CACHE_IMAGES)
        return body

    def _sized(self, source: SourceImage, max_side: int | None) -> tuple[np.ndarray, np.ndarray | None]:
        """The photo at ``max_side`` (cached: previews must not pay a full-size downscale per drag event)."""
        rgb, alpha = source.rgb, source.alpha
        if not max_side or max(rgb.shape[:2]) <= max_side:
            return rgb, alpha
        key = (source.image_id, max_side, rgb.shape)
        with self._lock:
            hit = self._sized_cache.get(key)
        if hit is not None:
            return hit
        s = max_side / max(rgb.shape[:2])
        size = (max(1, round(rgb.shape[1] * s)), max(1, round(rgb.shape[0] * s)))
        small = (cv2.resize(rgb, size, interpolation=cv2.INTER_AREA),
                 None if alpha is None else cv2.resize(alpha, size, interpolation=cv2.INTER_AREA))
        with self._lock:
            self._put(self._sized_cache, key, small, CACHE_IMAGES)
        return small

    def _in_scene(self, source: SourceImage, rgb: np.ndarray) -> np.ndarray:
        """``rgb`` (the photo at one size) in its profile's own linear light (``SourceImage.tone``), cached
        beside the sized copies: a drag preview must not redo it per event."""
        if source.tone is None:
            return rgb
        key = (source.image_id, "scene", rgb.shape, source.tone)
        with self._lock:
            hit = self._sized_cache.get(key)
        if hit is not None:
            return hit[0]
        scene = to_scene_linear(rgb, source.tone)
        with self._lock:
            self._put(self._sized_cache, key, (scene, None), CACHE_IMAGES * 2)
        return scene

    # ------------------------------------------------------------------------------------ view

    def _repose(self, request: EditRequest, source: SourceImage, analysis: FaceAnalysis, ctx: RelightContext,
                rgb: np.ndarray, alpha: np.ndarray | None, cancel: CancelToken
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray, dict]:
        """Relight and turn the head in one pass: (image, alpha, shading, landmarks in the result, info)."""
        view, rig = request.view, request.rig
        relit = not _is_passthrough(rig)
        vctx = self.view_context(source, analysis, request.quality, rgb)
        cancel.raise_if_cancelled()
        t = time.perf_counter()
        warp = backward_warp(vctx.geometry, view.yaw, view.pitch)
        t_warp = time.perf_counter() - t
        cancel.raise_if_cancelled()
        shading = None
        original, relight_fn = rgb, None
        if relit:
            r = rotation(view.yaw, view.pitch)
            head_rig, body_rig = (rotate_rig(rig, r.T), rig) if view.lights_follow == "camera" else \
                (rig, rotate_rig(rig, r))
            g_h, b_h, t_h = gain_maps(ctx, head_rig)
            g_b, b_b, t_b = gain_maps(ctx, body_rig)
            wgt = vctx.rigidity_at(ctx.size)[..., None]
            gain = g_h * wgt + g_b * (1.0 - wgt)
            bias = b_h * wgt + b_b * (1.0 - wgt)
            target = t_h * wgt + t_b * (1.0 - wgt)
            original = apply_gain(rgb, gain, bias, None if rig.relight_background else analysis.matte)
            size = (rgb.shape[1], rgb.shape[0])

            def relight_fn(crop: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
                return crop * sample_box(gain, box, size) + sample_box(bias, box, size)

            shading = remap_small(target, warp)
        image, _ = composite(warp, vctx.layers, original=original, relight=relight_fn,
                             relight_plate=rig.relight_background, cubic=request.quality == "full")
        out_alpha = None if alpha is None else warp_channel(warp, alpha)
        landmarks = self._moved_landmarks(analysis, vctx.geometry, view, rgb.shape)
        if relit and rig.catchlights:
            # the eyes mirror the lights as the camera sees them (``body_rig``: the rig in camera space,
            # whichever way the lights follow); the turned photo's own catchlights go
            image = move_catchlights(image, image, landmarks, body_rig, rgb.shape[1] / analysis.image_size[0])
        info = {"yaw": view.yaw, "pitch": view.pitch, "lights_follow": view.lights_follow,
                "focal_px": round(vctx.geometry.camera.focal * analysis.image_size[0] / vctx.geometry.shape[1], 1),
                "filled_fraction": round(float(warp.filled.sum()) / float(np.prod(warp.shape)), 4),
                "warp_ms": round(t_warp * 1000, 1)}
        return image, out_alpha, shading, landmarks, info

    @staticmethod
    def _moved_landmarks(analysis: FaceAnalysis, geom: WarpGeometry, view: ViewPose,
                         shape: tuple[int, ...]) -> np.ndarray:
        """The input's landmarks carried by the turn, in pixels of the rendered image."""
        to_work = geom.shape[1] / analysis.image_size[0]
        moved = transform_points(geom, analysis.landmarks * np.float32(to_work), view.yaw, view.pitch)
        return moved / np.float32(geom.shape[1] / shape[1])

    # ------------------------------------------------------------------------------------ identity

    def _identity(self, request: EditRequest, source: SourceImage, analysis: FaceAnalysis, image: np.ndarray,
                  landmarks: np.ndarray | None) -> float | None:
        """Embedding distance input → result (cached per image, rig and view); None if unavailable."""
        from icportrait_studio.identity import embedding_distance, face_embedding, identity_available

        if not identity_available()[0]:
            return None
        key = (source.image_id, json.dumps(request.rig.to_dict(), sort_keys=True),
               json.dumps(request.view.to_dict(), sort_keys=True), image.shape)
        with self._lock:
            if key in self._distances:
                return self._distances[key]
            has_ref = source.image_id in self._embeddings
            ref = self._embeddings.get(source.image_id)
        if not has_ref:
            ref = face_embedding(source.rgb, analysis.landmarks)
            with self._lock:
                self._put(self._embeddings, source.image_id, ref, CACHE_IMAGES)
        dist = embedding_distance(ref, face_embedding(image, landmarks)) if ref is not None else None
        with self._lock:
            self._put(self._distances, key, dist, 32)
        return dist

    # ------------------------------------------------------------------------------------ run

    def run(self, request: EditRequest, source: SourceImage, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None) -> Result:
        cancel = cancel or CancelToken()
        h, w = source.rgb.shape[:2]
        if min(h, w) < MIN_IMAGE_SIDE:
            raise InputError(f"the image is only {w}×{h} pixels: at least {MIN_IMAGE_SIDE}×{MIN_IMAGE_SIDE} are "
                             "needed to relight it")
        if request.quality == "full" and self.identity_check:
            from icportrait_studio.identity import preload

            preload()  # the model loads while the photo is analysed and relit
        t0 = time.perf_counter()
        analysis = self.analysis(source, progress)
        t_analysis = time.perf_counter() - t0
        cancel.raise_if_cancelled()
        progress(Progress(0.4, "estimating light"))
        t1 = time.perf_counter()
        ctx = self.context(source, analysis, SHADING_SIDE[request.quality], request.max_side)
        cancel.raise_if_cancelled()
        rgb, alpha = self._sized(source, request.max_side)
        rgb = self._in_scene(source, rgb)  # relit in the profile's own linear light, handed back as the app holds it
        warnings = list(analysis.warnings)
        view_info = None
        landmarks = analysis.landmarks
        turn = not request.view.is_identity
        refusal = why_not_turnable(analysis) if turn else None
        if refusal is not None:
            turn = False
            warnings.append(f"{refusal}: the view was not changed")
        if turn:
            progress(Progress(0.6, "turning the head"))
            image, alpha, shading, landmarks, view_info = self._repose(request, source, analysis, ctx, rgb, alpha,
                                                                       cancel)
        else:
            progress(Progress(0.6, "relighting"))
            image, shading = relight_image(rgb, ctx, request.rig, analysis)
            if landmarks is not None and rgb.shape[:2] != source.rgb.shape[:2]:
                landmarks = landmarks * np.float32(rgb.shape[1] / source.rgb.shape[1])
        cancel.raise_if_cancelled()
        if source.tone is not None:
            image = from_scene_linear(image, source.tone)
        t_relight = time.perf_counter() - t1
        image = np.ascontiguousarray(image, dtype=np.float32)
        info = {
            "backend": self.name,
            "analysis": analysis.summary(),
            "source_light": ctx.source.to_dict(),
            "timings_ms": {"analysis": round(t_analysis * 1000, 1), "relight": round(t_relight * 1000, 1)},
            "warnings": warnings,
        }
        if view_info is not None:
            info["view"] = view_info
        if request.quality == "full" and self.identity_check:
            progress(Progress(0.9, "checking identity"))
            t2 = time.perf_counter()
            dist = self._identity(request, source, analysis, image, landmarks)
            if dist is not None:
                info["identity_distance"] = round(dist, 4)
                info["timings_ms"]["identity"] = round((time.perf_counter() - t2) * 1000, 1)
        progress(Progress(1.0, "done"))
        return Result(request=request, image=image, alpha=alpha, shading=shading, info=info, landmarks=landmarks)
