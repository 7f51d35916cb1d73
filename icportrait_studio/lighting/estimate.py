"""Estimate the lighting already in a photo, so relighting can divide it out rather than assume it.

The luminance of face skin is modelled as albedo × irradiance(normal), the irradiance being a
non-negative mix of soft directional lobes spread over the sphere plus a uniform fill (NNLS). Unlike
a free 9-term SH fit, a non-negative mix cannot invent negative light, and it stays sensible on the
normals the face does not show (hair, neck). The fit is iteratively re-weighted (Tukey) so pixels the
model cannot explain — beard, glasses, make-up, specular shine, catchlights — lose weight. A second
pass adds the cast shadows of the few lobes that matter (a side-lit photo's nose shadow).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.core.lights import angles_from_direction
from icportrait_studio.lighting import sh
from icportrait_studio.lighting.nnls import nnls
from icportrait_studio.lighting.shading import sphere_light_cosine
from icportrait_studio.lighting.shadows import shadow_visibility

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
MAX_SAMPLES = 6000
LOBE_ALPHA = math.radians(25.0)


@dataclass(frozen=True)
class SourceLight:
    """The photo's own lighting as lobe weights, plus readable summaries."""

    directions: np.ndarray  # (K, 3) lobe directions, camera space
    weights: np.ndarray  # (K,) non-negative lobe strengths
    fill: float  # uniform ambient term
    coeffs: np.ndarray  # (9,) SH projection of the irradiance (for summaries and tests)
    direction: tuple[float, float, float]  # dominant direction, camera space
    azimuth: float
    elevation: float
    directionality: float  # 0 = flat/ambient light, 1 = one hard light
    color: tuple[float, float, float]  # colour of the directional part relative to the fill
    fit_error: float  # robust relative RMS residual on skin
    skin_pixels: int

    def to_dict(self) -> dict:
        return {
            "azimuth": round(self.azimuth, 1), "elevation": round(self.elevation, 1),
            "directionality": round(self.directionality, 3),
            "color": "#" + "".join(f"{round(255 * c):02x}" for c in self.color),
            "fit_error": round(self.fit_error, 4), "skin_pixels": self.skin_pixels,
        }

    def shading(self, normals: np.ndarray, visibility: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """Irradiance at every normal (HxW), with cast shadows for the lobes given in ``visibility``."""
        out = np.full(normals.shape[:-1], self.fill, np.float32)
        for k in np.nonzero(self.weights > 1e-6)[0]:
            term = sphere_light_cosine(normals @ self.directions[k].astype(np.float32), LOBE_ALPHA)
            if visibility is not None and k in visibility:
                term = term * visibility[k]
            out += np.float32(self.weights[k]) * term
        return out


def lobe_directions(count: int = 48) -> np.ndarray:
    """Fibonacci-sphere directions restricted to the front-facing half and a band behind it."""
    i = np.arange(count * 2) + 0.5
    z = 1 - 2 * i / (count * 2)
    phi = math.pi * (1 + 5**0.5) * i
    r = np.sqrt(1 - z * z)
    d = np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)
    # keep directions that can light a face seen from the front (z > -0.35)
    return d[d[:, 2] > -0.35].astype(np.float32)


def _design(normals: np.ndarray, dirs: np.ndarray, vis: np.ndarray | None = None) -> np.ndarray:
    cols = sphere_light_cosine(normals @ dirs.T, LOBE_ALPHA)
    if vis is not None:
        cols = cols * vis
    return np.hstack([np.ones((len(normals), 1), np.float32), cols]).astype(np.float64)


def _robust_nnls(a: np.ndarray, b: np.ndarray, iters: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares, re-weighted by Tukey's biweight on the relative residual."""
    w = np.ones(len(b))
    x = np.zeros(a.shape[1])
    # a small ridge row per unknown keeps the mix spread instead of spiky
    lam = 0.02 * math.sqrt(len(b)) * float(np.mean(b))
    reg_a = np.eye(a.shape[1]) * lam
    reg_a[0, 0] = 0.0
    for _ in range(iters):
        sw = np.sqrt(w)
        x, _ = nnls(np.vstack([a * sw[:, None], reg_a]), np.concatenate([b * sw, np.zeros(a.shape[1])]))
        pred = a @ x
        rel = (b - pred) / np.maximum(pred, 0.05 * max(float(b.mean()), 1e-6))
        scale = 1.4826 * float(np.median(np.abs(rel))) + 1e-6
        u = rel / (4.685 * scale)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
    return x, w


def estimate_source_light(rgb: np.ndarray, normals: np.ndarray, skin: np.ndarray, *,
                          depth: np.ndarray | None = None, face_width: float = 0.0
                          ) -> tuple[SourceLight, dict[int, np.ndarray]]:
    """Fit the light in ``rgb`` (linear float32 HxWx3) on ``skin`` pixels with camera-space ``normals``.

    With ``depth`` the strongest lobes are refitted with their cast shadows; their visibility maps
    are returned so the caller can render the same source shading everywhere.
    """
    dirs = lobe_directions()
    ys, xs = np.nonzero(skin)
    if len(ys) < 50:
        weights = np.zeros(len(dirs))
        weights[int(np.argmax(dirs[:, 2]))] = float(rgb.mean() + 1e-3)
        src = _summarise(dirs, weights, 0.2 * float(rgb.mean() + 1e-3), (1.0, 1.0, 1.0), 1.0, len(ys))
        return src, {}
    if len(ys) > MAX_SAMPLES:
        pick = np.random.default_rng(0).choice(len(ys), MAX_SAMPLES, replace=False)
        ys, xs = ys[pick], xs[pick]
    px = rgb[ys, xs].astype(np.float32)
    ok = px.max(axis=1) < 0.98  # clipped pixels carry no shading information
    if ok.sum() > 50:
        ys, xs, px = ys[ok], xs[ok], px[ok]
    lum = (px @ LUMA).astype(np.float64)
    n = normals[ys, xs]
    a = _design(n, dirs)
    x, w = _robust_nnls(a, lum)
    visibility: dict[int, np.ndarray] = {}
    if depth is not None and face_width > 0:
        strong = [int(k) for k in np.argsort(x[1:])[::-1][:4] if x[1 + k] > 0.08 * x[1:].sum()]
        if strong:
            for k in strong:
                visibility[k] = _without_slivers(shadow_visibility(
                    depth, tuple(float(v) for v in dirs[k]), max_dist=0.6 * face_width, softness=math.tan(LOBE_ALPHA)))
            vis = np.ones((len(ys), len(dirs)), np.float32)
            for k, v in visibility.items():
                vis[:, k] = v[ys, xs]
            a = _design(n, dirs, vis)
            x, w = _robust_nnls(a, lum)
            visibility = {k: v for k, v in visibility.items() if x[1 + k] > 1e-6}
    pred = a @ x
    err = float(np.sqrt(np.average(((lum - pred) / np.maximum(pred, 1e-4)) ** 2, weights=w + 1e-9)))
    color = _directional_color(a, px, w, x)
    return _summarise(dirs, x[1:], float(x[0]), color, err, int((w > 0.05).sum())), visibility


def _without_slivers(visibility: np.ndarray) -> np.ndarray:
    """``visibility`` with shadows narrower than 3 pixels closed (a 3×3 grey-level closing).

    At a steep step of the depth map (the side of the nose, the mesh's jaw line) the march leaves a
    one-pixel, stair-stepped shadow at the wall's foot. In the photo's own light such a sliver is below
    what the mesh can place: dividing it out lit a dotted line of bright pixels beside the nose and
    along the jaw under any new light. Shadows wider than that (a side-lit photo's nose shadow) stay.
    """
    return cv2.morphologyEx(visibility, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))


def _directional_color(a: np.ndarray, px: np.ndarray, w: np.ndarray, x: np.ndarray) -> tuple[float, float, float]:
    """Per channel, how strong the lit part is relative to the fill (a white-balanced photo gives white)."""
    direct = a[:, 1:] @ x[1:]
    fill = np.full(len(a), x[0])
    basis = np.stack([fill, direct], axis=1) * np.sqrt(w)[:, None]
    rel = []
    for c in range(3):
        coef, *_ = np.linalg.lstsq(basis, px[:, c] * np.sqrt(w), rcond=None)
        rel.append(max(float(coef[1]), 1e-6))
    arr = np.array(rel)
    arr /= arr.max()
    return (float(arr[0]), float(arr[1]), float(arr[2]))


def _summarise(dirs: np.ndarray, weights: np.ndarray, fill: float, color, err: float, count: int) -> SourceLight:
    coeffs = np.zeros(9, np.float32)
    coeffs[0] = fill / 0.282095  # a uniform irradiance is the constant band alone
    for d, wt in zip(dirs, weights, strict=True):
        if wt > 0:
            coeffs += sh.directional_irradiance_coeffs(d, float(wt))
    vec = (weights[:, None] * dirs).sum(axis=0)
    norm = float(np.linalg.norm(vec))
    direction = tuple(float(v) for v in (vec / norm if norm > 1e-9 else np.array([0.0, 0.0, 1.0])))
    az, el = angles_from_direction(*direction)
    total = float(weights.sum()) + fill
    directionality = float(norm / total) if total > 0 else 0.0
    return SourceLight(directions=dirs, weights=weights.astype(np.float32), fill=float(fill), coeffs=coeffs,
                       direction=direction, azimuth=az, elevation=el, directionality=directionality,
                       color=color, fit_error=err, skin_pixels=count)
