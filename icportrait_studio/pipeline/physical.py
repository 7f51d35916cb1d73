"""The physical backend: CPU only, no downloads, interactive speed. The default.

Analysis (face mesh, matte, geometry) and the rig-independent part of relighting are cached per
image, so dragging a light only re-renders shading at a few hundred pixels and applies it.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import cv2
import numpy as np

from icportrait_studio.core.request import EditRequest
from icportrait_studio.geometry.analysis import FaceAnalysis, analyze
from icportrait_studio.lighting.relight import RelightContext, prepare, relight_image
from icportrait_studio.pipeline.base import Result, SourceImage
from icportrait_studio.pipeline.progress import CancelToken, Progress, ProgressFn, no_progress

SHADING_SIDE = {"preview": 192, "full": 320}
CACHE_IMAGES = 4


class PhysicalBackend:
    name = "physical"

    def __init__(self) -> None:
        self._analyses: OrderedDict[str, FaceAnalysis] = OrderedDict()
        self._contexts: OrderedDict[tuple[str, int, tuple[int, int]], RelightContext] = OrderedDict()
        self._sized_cache: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
        self._lock = threading.Lock()

    def available(self) -> tuple[bool, str]:
        return True, "always available (CPU)"

    def forget(self, image_id: str) -> None:
        with self._lock:
            self._analyses.pop(image_id, None)
            for cache in (self._contexts, self._sized_cache):
                for key in [k for k in cache if k[0] == image_id]:
                    del cache[key]

    def analysis(self, source: SourceImage, progress: ProgressFn = no_progress) -> FaceAnalysis:
        with self._lock:
            cached = self._analyses.get(source.image_id)
            if cached is not None:
                self._analyses.move_to_end(source.image_id)
                return cached
        progress(Progress(0.05, "analysing face"))
        result = analyze(source.rgb)
        with self._lock:
            self._analyses[source.image_id] = result
            while len(self._analyses) > CACHE_IMAGES:
                self._analyses.popitem(last=False)
        return result

    def context(self, source: SourceImage, analysis: FaceAnalysis, side: int) -> RelightContext:
        key = (source.image_id, side, analysis.image_size)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is not None:
                self._contexts.move_to_end(key)
                return ctx
        ctx = prepare(source.rgb, analysis, side=side)
        with self._lock:
            self._contexts[key] = ctx
            while len(self._contexts) > CACHE_IMAGES * 2:
                self._contexts.popitem(last=False)
        return ctx

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
            self._sized_cache[key] = small
            while len(self._sized_cache) > CACHE_IMAGES:
                self._sized_cache.popitem(last=False)
        return small

    def run(self, request: EditRequest, source: SourceImage, progress: ProgressFn = no_progress,
            cancel: CancelToken | None = None) -> Result:
        cancel = cancel or CancelToken()
        t0 = time.perf_counter()
        analysis = self.analysis(source, progress)
        t_analysis = time.perf_counter() - t0
        cancel.raise_if_cancelled()
        progress(Progress(0.4, "estimating light"))
        t1 = time.perf_counter()
        ctx = self.context(source, analysis, SHADING_SIDE[request.quality])
        cancel.raise_if_cancelled()
        rgb, alpha = self._sized(source, request.max_side)
        progress(Progress(0.6, "relighting"))
        image, shading = relight_image(rgb, ctx, request.rig, analysis)
        cancel.raise_if_cancelled()
        t_relight = time.perf_counter() - t1
        progress(Progress(1.0, "done"))
        info = {
            "backend": self.name,
            "analysis": analysis.summary(),
            "source_light": ctx.source.to_dict(),
            "timings_ms": {"analysis": round(t_analysis * 1000, 1), "relight": round(t_relight * 1000, 1)},
            "warnings": list(analysis.warnings),
        }
        return Result(request=request, image=np.ascontiguousarray(image, dtype=np.float32), alpha=alpha,
                      shading=shading, info=info)
