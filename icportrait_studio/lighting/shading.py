"""Shading for a light rig over camera-space normals and depth: diffuse, soft shadows, skin specular.

All light arithmetic happens at the "shading size" (a few hundred pixels): shading is smooth, and
the photo's own detail is restored when the result is applied at full resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.lighting.shadows import shadow_visibility

SHEEN_FLOOR = 1e-6  # skin weight below which no specular is computed (it would be below float noise)
MAX_WRAP_DEG = 75.0  # size = 1 is a light this wide (angular radius), a very large soft box
# Light scattered under the skin travels a few millimetres before it leaves, so even a hard light's
# cast shadow (nose, brow) has a soft rim: visibility is blurred over this fraction of the face width.
SCATTER_BLUR = 0.015


@dataclass
class ShadingGeometry:
    """Geometry at the shading size: camera-space normals, depth (pixels), masks, face scale."""

    normals: np.ndarray  # HxWx3 float32
    depth: np.ndarray  # HxW float32
    person: np.ndarray  # HxW float32 soft
    skin: np.ndarray  # HxW float32 soft (weight of the skin specular)
    face_width: float  # pixels at this size
    head_center: tuple[float, float, float]  # pixels (x right, y up, z toward camera)
    occlusion: np.ndarray | None = None  # HxW float32 ambient occlusion in [0, 1] (None: none)


def light_alpha(size: float) -> float:
    """Angular radius (radians) of a light of the given size."""
    return math.radians(max(0.5, size * MAX_WRAP_DEG))


def sphere_light_cosine(cos_t: np.ndarray, alpha: float) -> np.ndarray:
    """Irradiance from a sphere light of angular radius alpha (a smooth terminator; = max(0, cos) at alpha→0).

    Within the band |cos| < sin(alpha) it is (cos + s)² / 4s, which is never below cos and meets it at
    cos = s; so the whole curve is max(cos, s · t²) with t = clip((cos + s) / 2s, 0, 1): four array
    passes instead of a band mask and a select (this runs once per light per drag event)."""
    s = math.sin(alpha)
    if s <= 1e-3:
        return np.maximum(cos_t, 0.0)
    t = np.clip((cos_t + np.float32(s)) * np.float32(0.5 / s), 0.0, 1.0)
    t *= t
    t *= np.float32(s)
    return np.maximum(cos_t, t)


def _point_light_fields(g: ShadingGeometry, light: Light) -> tuple[np.ndarray, np.ndarray, tuple]:
    """Per-pixel direction to a point light and its inverse-square falloff (1 at the head centre)."""
    h, w = g.depth.shape
    radius = max(1.0, 0.5 * g.face_width)
    cx, cy, cz = g.head_center
    d = np.array(light.direction, np.float32)
    pos = np.array([cx, cy, cz], np.float32) + d * light.distance * radius
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vec = np.dstack([pos[0] - xx, pos[1] - (-yy), pos[2] - g.depth])
    dist = np.linalg.norm(vec, axis=2)
    ldir = vec / np.maximum(dist, 1e-3)[..., None]
    falloff = (light.distance * radius / np.maximum(dist, 0.25 * radius)) ** 2
    mean_dir = tuple(float(v) for v in d)
    return ldir, falloff, mean_dir


def render_light(g: ShadingGeometry, light: Light, *, shadows: bool = True, specular: float = 0.0,
                 roughness: float = 0.45) -> tuple[np.ndarray, np.ndarray]:
    """(diffuse, specular) intensity maps (HxW float32) for one light at unit colour."""
    alpha = light_alpha(light.size)
    if light.kind == "point":
        ldir, falloff, sdir = _point_light_fields(g, light)
        cos_t = np.einsum("hwc,hwc->hw", g.normals, ldir)
    else:
        sdir = light.direction
        ldir, falloff = None, None
        cos_t = g.normals @ np.asarray(sdir, np.float32)
    diffuse = sphere_light_cosine(cos_t, alpha)
    if shadows and light.intensity > 0:
        vis = shadow_visibility(g.depth, sdir, max_dist=0.6 * g.face_width, softness=math.tan(alpha) + 0.02)
        vis = cv2.GaussianBlur(vis, (0, 0), SCATTER_BLUR * g.face_width + 0.3)
        diffuse = diffuse * vis
    else:
        vis = None
    spec = np.zeros_like(diffuse)
    x, y, bw, bh = cv2.boundingRect((g.skin > SHEEN_FLOOR).astype(np.uint8)) if specular > 0 else (0, 0, 0, 0)
    if bw and bh:
        # normalised Blinn-Phong with the viewer along +z; Schlick-free (skin's F0 is folded into `specular`).
        # Only over the skin's box: the sheen is zero elsewhere, and the power is the costly part
        box = (slice(y, y + bh), slice(x, x + bw))
        m = max(1.0, 2.0 / (roughness * roughness) - 2.0)
        normals = g.normals[box]
        if ldir is None:
            hv = np.asarray(sdir, np.float32) + np.array([0, 0, 1], np.float32)
            hv /= np.linalg.norm(hv) + 1e-8
            ndh = np.clip(normals @ hv, 0, 1)
        else:
            hvec = ldir[box] + np.array([0, 0, 1], np.float32)
            hvec /= np.linalg.norm(hvec, axis=2, keepdims=True) + 1e-8
            ndh = np.clip(np.einsum("hwc,hwc->hw", normals, hvec), 0, 1)
        spec[box] = specular * (m + 2) / 8 * ndh**m * np.maximum(cos_t[box], 0) * g.skin[box]
        if vis is not None:
            spec[box] *= vis[box]
    if falloff is not None:
        diffuse = diffuse * falloff
        spec = spec * falloff
    return diffuse.astype(np.float32), spec.astype(np.float32)


def render_rig(g: ShadingGeometry, rig: LightRig, *, shadows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(diffuse, specular) RGB shading (HxWx3 float32) for a whole rig, ambient included in diffuse.

    Each light is rendered as one monochrome map; the colours are applied once at the end as a single
    (pixels × lights) @ (lights × 3) product, instead of one broadcast RGB pass per light.
    """
    h, w = g.depth.shape
    ambient = np.float32(rig.ambient) * (g.occlusion if g.occlusion is not None else np.ones((h, w), np.float32))
    maps, specs, colors = [ambient], [], [np.ones(3, np.float32)]
    for light in rig.lights:
        if not light.enabled or light.intensity <= 0:
            continue
        d, s = render_light(g, light, shadows=shadows, specular=rig.specular, roughness=rig.roughness)
        maps.append(d)
        specs.append(s)
        colors.append(np.asarray(light.color, np.float32) * np.float32(light.intensity))
    cols = np.stack(colors)
    diffuse = (np.stack(maps, axis=-1).reshape(-1, len(maps)) @ cols).reshape(h, w, 3)
    if specs and rig.specular > 0:
        spec = (np.stack(specs, axis=-1).reshape(-1, len(specs)) @ cols[1:]).reshape(h, w, 3)
    else:
        spec = np.zeros((h, w, 3), np.float32)
    return diffuse.astype(np.float32, copy=False), spec.astype(np.float32, copy=False)
