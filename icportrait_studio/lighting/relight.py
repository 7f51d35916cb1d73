"""The relight compositor: divide out the photo's light, multiply in the rig's, at full resolution.

    out = photo × G + B
    G = reliability × target / source          (a smooth gain; the photo keeps all its detail)
    B = (1 − reliability) × albedo_fill × target + specular

where the source shading is the SH fit of the photo's light (normalised to mean 1 on skin), the
target shading is the rig rendered with shadows (normalised so a frontal unit light ≈ the photo's
exposure), and "reliability" drops where the photo is too dark or clipped to tell albedo from
light: there a smooth albedo borrowed from well-lit neighbours is lit instead, so the gain never
explodes on shadowed or steep mesh sides. G and B are computed at the shading size and upsampled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

import cv2
import numpy as np

from icportrait_studio.core.lights import LightRig
from icportrait_studio.geometry.analysis import FaceAnalysis
from icportrait_studio.geometry.completion import normalized_blur, smooth_blur
from icportrait_studio.geometry.mirror_map import mirror_map
from icportrait_studio.geometry.raster import fill_polygon
from icportrait_studio.geometry.topology import face_topology
from icportrait_studio.lighting.catchlights import move_catchlights
from icportrait_studio.lighting.estimate import LUMA, SourceLight, estimate_source_light
from icportrait_studio.lighting.shading import ShadingGeometry, render_rig, sphere_light_cosine
from icportrait_studio.lighting.shadows import ambient_occlusion

MAX_GAIN = 6.0
# A rig that lights a point this many times brighter than the photo's light did (the low end) no longer
# trusts the photo's pixel there, fully from the high end on: the lit-from-the-other-side half of a
# side-lit face was the photo's shadow multiplied up, with the parts of it the source model missed (the
# nose's shadow at the wrong width) and its noise. The fill (the mirror point's or the neighbours' albedo)
# is lit instead. The ratio is the two lighting models' (the rig's over the photo's), not the pixel's, so
# a dark mark on well-lit skin stays a mark. Side-lit Yale photos relit (benchmark CLI, linear): si-MSE
# 0.0152 -> 0.0138; every Yale lighting as the input: 45 of 64 better, 1 worse (bench/RESULTS.md).
GAIN_TRUST = (1.5, 3.0)
# With the rig's ``keep_texture`` the fill taking over there keeps the photo's own fine detail (the photo
# over its blur at this many face widths): a mole on the brightened side stays, and so do the narrow
# streaks of the photo's shadow (the accuracy gain above falls to about a third: bench/RESULTS.md).
TEXTURE_REACH = 0.02
GAIN_MAPS_KEPT = 2  # rigs whose gain maps a context keeps (the turning head's and the still shoulders')
MATTE_EDGE = (0.5, 0.98)  # matte values over which relighting fades in at the person's edge
EXPOSURE_PERCENTILE = 90.0
# Scale on the mesh normals' tilt (1 = the mesh as regressed). Session 1 steepened it ×1.4 because that
# scored best on the Yale benchmark, but those photos are linear-light captures that were being decoded
# as sRGB, which exaggerates shading contrast; decoded as what they are (``--input-encoding linear``)
# the mesh's own relief scores best (1.0 vs 1.4: si-MSE 0.0126 vs 0.0140), so no correction is applied.
NORMAL_RELIEF = 1.0
# Fill light reaches creases (eye sockets, nostrils, the fold beside the nose) through a narrower
# opening: ambient occlusion over this reach (× face width), smoothed so mesh facets do not show.
OCCLUSION_REACH = 0.3
OCCLUSION_SMOOTH = 0.02
# how well lit (the albedo fill's weight) a point's mirror point must be for the point to borrow its albedo
MIRROR_TRUST = (0.3, 0.7)
# the photo's dominant light must come from at least this far in front of the face's plane (its direction's
# z): lit from beside or behind, the lit skin is a rim read at grazing incidence (the Yale faces lit from
# 85-130° lent albedo that made every relight worse: SSIM -0.02 to -0.05)
MIRROR_FRONTAL = 0.1
MIRROR_FEATHER = 0.02  # face widths over which the borrowing fades in from the mesh's outline
MIRROR_EYE_PERCENTILE = 75.0  # a borrowed eye's brightness is capped here (its catchlight is the old light's)
# face widths: a clipped pixel borrows the albedo of reliable skin at the first of these reaches that finds some
CLIPPED_REACH = (0.02, 0.04, 0.08)
# The photo's skin shine (see ``_shine``): skin brighter than the skin around it (averaged over
# SHINE_REACH face widths) by more than this ratio is taken for a highlight.
SHINE_EXCESS = 1.15
SHINE_REACH = 0.1
# ... and only where the photo's light can put a highlight: (n · h)^SHINE_LOBE, h halfway between the
# photo's dominant light and the camera (8: about 30° either side of the mirror direction).
SHINE_LOBE = 8.0


@dataclass
class RelightContext:
    """Everything about one photo that does not depend on the rig, at one shading size."""

    geometry: ShadingGeometry
    source: SourceLight
    source_shading: np.ndarray  # HxW, mean 1 on skin
    reliability: np.ndarray  # HxW in [0, 1]
    albedo_fill: np.ndarray  # HxWx3, smooth albedo for unreliable pixels
    reference: float  # best-lit skin (90th percentile) shading under a frontal unit light
    person: np.ndarray  # HxW float32 soft matte at the shading size
    size: tuple[int, int]  # (w, h) of the whole frame at the shading size
    # HxWx3: the fill's albedo over the photo's blurred light (``TEXTURE_REACH``), over the reference: the
    # gain that lights the fill with the photo's own fine detail (a rig's ``keep_texture``)
    texture: np.ndarray
    # (x0, y0, x1, y1) at the shading size: the maps above cover only this box around the person (a
    # full-length portrait), and the gain maps are extended from it to the whole frame; None: the frame
    box: tuple[int, int, int, int] | None = None
    # builds this context over the whole frame (a rig that relights the background needs it): boxed only
    whole_frame: Callable[[], RelightContext] | None = field(default=None, repr=False)
    cache: dict = field(default_factory=dict, repr=False)  # rig-independent maps derived on first use
    # HxW in (0, 1]: the photo's own skin shine taken out (see ``_shine``); None: none found
    shine: np.ndarray | None = None


def _resize(a: np.ndarray, size: tuple[int, int], interp=cv2.INTER_AREA) -> np.ndarray:
    if (a.shape[1], a.shape[0]) == size:
        return a
    return cv2.resize(a, size, interpolation=interp)


PERSON_BOX_MARGIN = 0.5  # face widths the shading maps reach beyond the person (cast shadows, the edge's extension)
PERSON_BOX_MAX = 0.6  # the maps are boxed only when the person's box is at most this share of the frame


def person_box(person: np.ndarray, face_width: float) -> tuple[int, int, int, int] | None:
    """The box (x0, y0, x1, y1) of ``person`` (a soft matte) grown by PERSON_BOX_MARGIN face widths, or
    None when it would cover most of the frame anyway (a usual portrait) or there is no person.

    A full-length portrait keeps the face's shading detail, so its shading maps are large (~1 MP), and
    most of them were background the relight never touches: the first relight of a 2000×3000 photo
    spent 0.6 s preparing maps over the whole frame."""
    h, w = person.shape
    x, y, bw, bh = cv2.boundingRect((person > 0.3).astype(np.uint8))
    if bw == 0 or bh == 0:
        return None
    m = int(np.ceil(PERSON_BOX_MARGIN * face_width)) + 2
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)
    if (x1 - x0) * (y1 - y0) > PERSON_BOX_MAX * w * h:
        return None
    return x0, y0, x1, y1


def shading_size(analysis: FaceAnalysis, side: int, limit: int | None = None) -> tuple[int, int]:
    """The shading maps' size for a nominal long ``side``, scaled by the analysis' ``detail`` (a face small
    in its frame keeps about as many shading pixels across it as a portrait's), at most ``limit`` pixels
    long (the size a preview is rendered at: finer shading than the render would only cost time)."""
    gw, gh = analysis.geo_size
    long_side = side * analysis.detail if limit is None else min(side * analysis.detail, max(side, limit))
    s = min(1.0, long_side / max(gw, gh))
    return max(8, round(gw * s)), max(8, round(gh * s))


def prepare(rgb_linear: np.ndarray, analysis: FaceAnalysis, *, side: int = 320, limit: int | None = None,
            boxed: bool = True) -> RelightContext:
    """Estimate the photo's light and everything else the rig does not change (``side``, ``limit``: see
    ``shading_size``; ``boxed``: over the person's box only where that is a small part of the frame,
    see ``person_box``)."""
    size = shading_size(analysis, side, limit)
    s = size[0] / analysis.geo_size[0]
    shading = analysis.normals if analysis.shading_normals is None else analysis.shading_normals
    normals = np.array(_resize(shading, size), dtype=np.float32, copy=True)  # edited below: never the analysis'
    normals[..., :2] *= np.float32(NORMAL_RELIEF)
    normals /= np.linalg.norm(normals, axis=2, keepdims=True) + 1e-8
    depth = _resize(analysis.depth, size) * np.float32(s)
    fw = max(4.0, analysis.face_width * s)
    # hair over the face (a fringe): no skin sheen, its own colour kept (see below)
    hair = _resize(analysis.hair_mask.astype(np.float32), size) if analysis.hair_mask.any() else None
    person = _resize(analysis.matte, size).astype(np.float32)
    skin_soft = _resize(analysis.face_mask.astype(np.float32), size)
    skin = _resize(analysis.skin_mask.astype(np.uint8), size, cv2.INTER_NEAREST).astype(bool)
    img = _resize(rgb_linear, size).astype(np.float32)
    box = person_box(person, fw) if boxed else None
    x0, y0 = (0, 0) if box is None else box[:2]
    if box is not None:  # everything from here on in the box's own pixels
        crop = (slice(box[1], box[3]), slice(box[0], box[2]))
        normals, depth, person, skin_soft, skin, img = (np.ascontiguousarray(a[crop]) for a in
                                                        (normals, depth, person, skin_soft, skin, img))
        hair = None if hair is None else np.ascontiguousarray(hair[crop])
    shape = person.shape
    if analysis.landmarks is not None:
        lm = analysis.landmarks * (size[0] / analysis.image_size[0]) - np.array([x0, y0, 0], np.float32)
        cx, cy = float(lm[:, 0].mean()), float(lm[:, 1].mean())
        cz = float(np.median(lm[:, 2])) - 0.25 * fw
    else:
        ys, xs = np.nonzero(person > 0.5)
        cx, cy = (float(xs.mean()), float(ys.mean())) if len(xs) else (shape[1] / 2, shape[0] / 2)
        cz = float(depth.max()) - 0.5 * fw
    sheen = skin_soft
    if analysis.landmarks is not None:
        # the skin specular model does not hold on the eyes: their mirror catchlight is already in the photo
        topo = face_topology()
        eyes = fill_polygon(shape, lm[topo.left_eye]) | fill_polygon(shape, lm[topo.right_eye])
        sheen = skin_soft * (1.0 - cv2.dilate(eyes.astype(np.float32), np.ones((3, 3), np.uint8)))
    if hair is not None:  # a skin highlight laid over dark hair reads as a grey veil
        sheen = sheen * (1.0 - hair)
    geometry = ShadingGeometry(normals=normals.astype(np.float32), depth=depth.astype(np.float32), person=person,
                               skin=cv2.GaussianBlur(sheen, (0, 0), 0.02 * fw + 0.5), face_width=fw,
                               head_center=(cx, -cy, cz))
    occlusion = ambient_occlusion(depth, max_dist=OCCLUSION_REACH * fw)
    geometry.occlusion = cv2.GaussianBlur(occlusion, (0, 0), OCCLUSION_SMOOTH * fw + 0.3)

    source, visibility = estimate_source_light(img, normals, skin, depth=depth, face_width=fw)
    src = source.shading(normals, visibility)
    # Exposure anchor: the photo's best-lit skin (90th percentile) and the best-lit skin under a frontal
    # unit light are both "1", so a unit light keeps the brightest skin as bright as in the photo
    # wherever it comes from, and a frontal unit light reproduces the photo's exposure.
    skin_top = float(np.percentile(src[skin], EXPOSURE_PERCENTILE)) if skin.any() else float(np.abs(src).max() + 1e-6)
    src_u = src / max(skin_top, 1e-6)
    ref = sphere_light_cosine(normals[..., 2], 0.0)
    reference = float(np.percentile(ref[skin], EXPOSURE_PERCENTILE)) if skin.any() else 1.0

    # reliability: enough light to read albedo, and not clipped
    lum = img @ LUMA
    lit = np.clip((src_u - 0.08) / 0.22, 0.0, 1.0)
    # a clipped highlight's edge follows the photo's noise: grown by a pixel and softened, so the filled
    # pixels inside do not meet the photo's own at a ragged (blotchy) border
    clipped = np.clip((img.max(axis=2) - 0.92) / 0.06, 0.0, 1.0)
    clipped = cv2.GaussianBlur(cv2.dilate(clipped, np.ones((3, 3), np.uint8)), (0, 0), 1.0)
    reliability = (lit * lit * (3 - 2 * lit)) * (1.0 - clipped)
    albedo = img / np.maximum(src_u, 0.05)[..., None]
    shine = _shine(albedo @ LUMA, skin, reliability, sheen * _mirror_lobe(normals, source.direction), fw)
    if shine is not None:
        albedo *= shine[..., None]
    weight = reliability * (person > 0.5) * (clipped < 0.02)  # clipped values lend no albedo, even in part
    if hair is not None:
        # hair over the face keeps its own colour (a dark fringe read as unreliable skin was lit with the
        # skin's albedo) and lends none of it to the skin's fill
        weight = weight * (1.0 - hair)
        reliability = np.maximum(reliability, hair * (1.0 - clipped))
    fill = normalized_blur(albedo, weight, sigma=0.12 * fw)
    typical = np.array([np.median(albedo[..., c][weight > 0.5]) if (weight > 0.5).any() else float(lum.mean())
                        for c in range(3)], np.float32)
    coverage = smooth_blur(weight.astype(np.float32), 0.12 * fw)
    fill = np.where((coverage > 0.02)[..., None], fill, typical)
    # a photo lit from beside or behind the face's plane shows rims and grazing skin: no albedo to lend
    frontal = float(np.clip(source.direction[2] / MIRROR_FRONTAL, 0.0, 1.0))
    if analysis.landmarks is not None and frontal > 0.0:
        fill = fill + frontal * (_borrow_from_mirror(fill, albedo, weight, lm, shape, fw) - fill)
    if float(clipped.max()) > 0.02:
        # a clipped highlight is a patch of bright skin: its albedo is its nearest neighbours', not the
        # wide fill's, which is meant for shadowed areas and averages in brows, eyes and shade (it left a
        # grey blotch on a forehead the flash had clipped): the narrowest blur that reaches each pixel
        # (clipped skin borrows from skin only)
        near, reached = fill.copy(), np.zeros(clipped.shape, bool)
        lenders = [(weight * skin, skin), (weight, ~skin)] if skin.any() else [(weight, np.ones_like(skin))]
        for lend, where in lenders:
            lend = lend.astype(np.float32)
            for reach in CLIPPED_REACH:
                den = smooth_blur(lend, reach * fw)  # how much lender reaches each pixel
                take = where & ~reached & (den > 0.1)
                if take.any():
                    near[take] = (smooth_blur(albedo * lend[..., None], reach * fw)[take] / den[take][:, None])
                    reached |= take
        fill = fill + clipped[..., None] * (near - fill)
    # the photo's local light within the person (a blur across the outline would mix in the backdrop)
    blurred = normalized_blur(np.ascontiguousarray(img, dtype=np.float32), person, sigma=TEXTURE_REACH * fw + 0.3)
    texture = reliability[..., None] * fill / np.maximum(blurred, 2e-3) / np.float32(reference)
    return RelightContext(geometry=geometry, source=source, source_shading=src_u.astype(np.float32),
                          reliability=reliability.astype(np.float32), albedo_fill=fill.astype(np.float32),
                          reference=reference, person=person, size=size, box=box, shine=shine,
                          texture=texture.astype(np.float32),
                          whole_frame=None if box is None else
                          (lambda: prepare(rgb_linear, analysis, side=side, limit=limit, boxed=False)))


def _borrow_from_mirror(fill: np.ndarray, albedo: np.ndarray, weight: np.ndarray, landmarks: np.ndarray,
                        shape: tuple[int, int], face_width: float) -> np.ndarray:
    """``fill`` with the albedo of each point's mirror point on the face where the photo lit that one well.

    Where the photo is too dark to read albedo (the shadowed half of a side-lit face) the fill was a wide
    blur of the neighbours' albedo: relit from that side, a flat half-face with a blank eye. Faces are
    close to symmetric in what they are made of, so the other half lends its albedo, texture included
    (``geometry/mirror_map.py``; the eyes reflected about their irises, so each keeps its gaze). The
    mirrored eye's catchlight (the old light's) is capped at the eye's own brightness. The borrowing fades
    in over MIRROR_FEATHER face widths inside the mesh's outline (it met the fill outside at a stair-stepped
    seam). Measured on the
    Yale dev faces, each of the 64 lightings as the input photo (bench/RESULTS.md, session 11): si-MSE
    lower for 15, higher for 2 (lit from 40° below: +0.0005); SSIM within ±0.006; mean over the 37
    within ±60° azimuth and ±45° elevation 0.0194 → 0.0190, SSIM 0.521 either way.
    """
    mm = mirror_map(landmarks, shape)
    if not mm.valid.any():
        return fill
    mirrored = cv2.remap(albedo, mm.x, mm.y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    inside = cv2.GaussianBlur(mm.valid.astype(np.float32), (0, 0), MIRROR_FEATHER * face_width + 0.5)
    trust = cv2.remap(weight.astype(np.float32), mm.x, mm.y, cv2.INTER_LINEAR) * mm.valid
    trust *= np.clip(2.0 * inside - 1.0, 0.0, 1.0)
    if mm.eyes.any():
        cap = np.percentile(mirrored[mm.eyes], MIRROR_EYE_PERCENTILE, axis=0).astype(np.float32)
        mirrored[mm.eyes] = np.minimum(mirrored[mm.eyes], cap)
    lo, hi = MIRROR_TRUST
    t = np.clip((trust - lo) / (hi - lo), 0.0, 1.0)
    return fill + (t * t * (3 - 2 * t))[..., None] * (mirrored - fill)


def _mirror_lobe(normals: np.ndarray, light: tuple[float, float, float]) -> np.ndarray:
    """Where a light from ``light`` can leave a highlight seen by the camera: (n · h)^SHINE_LOBE."""
    half = np.asarray(light, np.float32) + np.array([0.0, 0.0, 1.0], np.float32)
    half /= max(float(np.linalg.norm(half)), 1e-6)
    return np.clip(normals @ half, 0.0, 1.0) ** np.float32(SHINE_LOBE)


def _shine(albedo: np.ndarray, skin: np.ndarray, reliability: np.ndarray, where: np.ndarray,
           face_width: float) -> np.ndarray | None:
    """The factor (<= 1) that takes the photo's own skin shine out, or None where there is none.

    Dividing the photo's light out leaves its specular highlights (forehead, nose tip, cheekbones) in the
    "albedo": a ratio relight would carry them to every new light at the old light's place, while the
    rig renders its own sheen where the new light puts it (the issue's error analysis: catchlights and
    shiny skin carry into every output). Skin whose apparent albedo stands more than SHINE_EXCESS above
    the skin's around it (a wide average of reliable skin, highlights left out) is capped there, by
    ``where`` in [0, 1]: the skin the sheen model covers (not the eyes, not hair over the face) within
    the photo's light's mirror lobe. Capped rather than levelled: skin a little brighter than its
    surroundings may be its own colour. Measured on the Yale dev faces (bench/RESULTS.md): levelling
    to the surroundings gained no accuracy over the cap and cost more identity (relit dev faces'
    distance 0.261 vs 0.225, 0.196 untouched); without the lobe it also flattened skin the mesh merely
    shades too dark (the cheeks beside the nose): twice the accuracy gain, identity 0.285.
    """
    weight = (skin & (reliability > 0.5)).astype(np.float32)
    if weight.sum() < 50:
        return None
    sigma = SHINE_REACH * face_width
    local = normalized_blur(albedo, weight, sigma=sigma)
    # again without the highlights themselves, which raised the average they are measured against
    local = normalized_blur(albedo, weight * (albedo < SHINE_EXCESS * local), sigma=sigma)
    cap = np.float32(SHINE_EXCESS) * local / np.maximum(albedo, 1e-6)
    factor = 1.0 - where * (1.0 - np.clip(cap, 0.0, 1.0))
    if float(factor.min()) > 0.999:
        return None
    return cv2.GaussianBlur(factor.astype(np.float32), (0, 0), 0.5)


def _extend(values: np.ndarray, inside: np.ndarray, sigma: float) -> np.ndarray:
    """Push ``values`` from inside the person outward (normalised blur); untouched where it cannot reach."""
    weight = inside.astype(np.float32)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    w3 = weight if values.ndim == 2 else weight[..., None]
    grow = cv2.GaussianBlur(values * w3, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    grow = grow / (np.maximum(den, 1e-6) if values.ndim == 2 else np.maximum(den, 1e-6)[..., None])
    reach = np.clip(den * 50.0, 0.0, 1.0)
    if values.ndim == 3:
        reach = reach[..., None]
    keep = inside if values.ndim == 2 else inside[..., None]
    return np.where(keep, values, reach * grow + (1.0 - reach) * values).astype(np.float32)


def _rig_factors(ctx: RelightContext, extended: bool) -> tuple[ShadingGeometry, np.ndarray, np.ndarray,
                                                                np.ndarray, np.ndarray, np.ndarray]:
    """(geometry, a, b, lent, inverse source, texture) with gain = target_raw × a and bias = target_raw × b
    + specular, cached per context; ``lent`` (the fill's albedo where the photo's own is trusted) and the
    inverse source shading let ``_gain_maps`` move trust from the photo to the fill where a rig's gain is
    high (``GAIN_TRUST``), ``texture`` (the context's) doing it with the photo's own detail kept.

    ``extended``: the person's geometry and factors are pushed a little past the person's edge, so the
    low-resolution maps carry the edge's own values there and upsampling never mixes in the background
    (the full-resolution matte then decides, crisply). Done once per photo, not once per drag event.
    """
    key = ("factors", extended)
    hit = ctx.cache.get(key)
    if hit is not None:
        return hit
    ref = np.float32(ctx.reference)
    a = (ctx.reliability / np.maximum(ctx.source_shading, 0.05) / ref).astype(np.float32)
    if ctx.shine is not None:
        a *= ctx.shine
    b = ((1.0 - ctx.reliability)[..., None] * ctx.albedo_fill / ref).astype(np.float32)
    lent = (ctx.reliability[..., None] * ctx.albedo_fill / ref).astype(np.float32)
    inv_source = (1.0 / np.maximum(ctx.source_shading, 0.05)).astype(np.float32)
    texture = ctx.texture
    geometry = ctx.geometry
    inside = ctx.person > 0.5
    if extended and inside.any() and not inside.all():
        sigma = 0.03 * geometry.face_width
        normals = _extend(geometry.normals, inside, sigma)
        normals /= np.linalg.norm(normals, axis=2, keepdims=True) + 1e-8
        occlusion = None if geometry.occlusion is None else _extend(geometry.occlusion, inside, sigma)
        geometry = replace(geometry, normals=normals, depth=_extend(geometry.depth, inside, sigma),
                           skin=_extend(geometry.skin, inside, sigma), occlusion=occlusion)
        a, b = _extend(a, inside, sigma), _extend(b, inside, sigma)
        lent, inv_source = _extend(lent, inside, sigma), _extend(inv_source, inside, sigma)
        texture = _extend(texture, inside, sigma)
    hit = (geometry, a, b, lent, inv_source, texture)
    ctx.cache[key] = hit
    return hit


def gain_maps(ctx: RelightContext, rig: LightRig, *, shadows: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(G, B, target shading) at the shading size for ``rig`` (treat them as read-only: the last few are
    kept per context, because a drag of the view sphere asks for the same shoulders' rig every frame)."""
    key = ("gain", rig, shadows)
    hit = ctx.cache.get(key)
    if hit is not None:
        return hit
    maps = _gain_maps(ctx, rig, shadows)
    for m in maps:
        m.setflags(write=False)  # shared from now on: an accidental in-place edit raises, never corrupts
    kept = [k for k in list(ctx.cache) if isinstance(k, tuple) and k and k[0] == "gain"]
    for old in kept[:max(0, len(kept) - GAIN_MAPS_KEPT + 1)]:
        ctx.cache.pop(old, None)
    ctx.cache[key] = maps
    return maps


def _gain_maps(ctx: RelightContext, rig: LightRig, shadows: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if rig.relight_background and ctx.whole_frame is not None:
        # the backdrop's relight depends on its own pixels (clipped or dark ones are filled): the whole frame
        frame = ctx.cache.get("whole-frame")
        if frame is None:
            frame = ctx.cache["whole-frame"] = ctx.whole_frame()
        return _gain_maps(frame, rig, shadows)
    geometry, a, b, lent, inv_source, texture = _rig_factors(ctx, extended=not rig.relight_background)
    diffuse, spec = render_rig(geometry, rig, shadows=shadows)
    # where the rig lights a point much more than the photo did, what the photo shows there (its shadow,
    # as the model failed to explain it, and its noise) would be multiplied up: the fill's albedo takes over
    lo, hi = GAIN_TRUST
    raised = diffuse.mean(axis=2) * inv_source
    trust = np.clip((np.float32(hi) - raised) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
    gain = diffuse * (a * trust)[..., None]
    np.minimum(gain, np.float32(MAX_GAIN), out=gain)
    if rig.keep_texture:
        # the fill, lit with the photo's own fine detail: a gain that brings the photo's local light to the
        # fill's (bounded by construction, so not capped: the cap would darken the brightened side)
        gain += diffuse * texture * (1.0 - trust)[..., None]
        bias = diffuse * b
    else:
        bias = diffuse * (b + lent * (1.0 - trust)[..., None])
    if rig.specular > 0:
        bias += spec * np.float32(0.5 / ctx.reference)
    k = np.float32(rig.keep_original)
    if k > 0:
        gain = (1 - k) * gain + k
        bias = (1 - k) * bias
    target = diffuse / np.float32(ctx.reference)
    if ctx.box is None:
        return gain, bias, target
    return _to_frame(ctx, gain), _to_frame(ctx, bias), _to_frame(ctx, target)


def _to_frame(ctx: RelightContext, a: np.ndarray) -> np.ndarray:
    """A boxed map extended to the whole frame by repeating its border: outside the box there is only
    background, which the matte keeps as it was (a rig relighting it uses the whole frame's context)."""
    x0, y0, x1, y1 = ctx.box  # type: ignore[misc]
    w, h = ctx.size
    return cv2.copyMakeBorder(np.ascontiguousarray(a), y0, h - y1, x0, w - x1, cv2.BORDER_REPLICATE)


def _edge_matte(matte: np.ndarray, cache: dict | None) -> np.ndarray:
    """The person matte with its soft edge tightened (cached per matte).

    Edge pixels mix hair and background; relighting them at the soft matte's weight brightens the
    background's share and draws a halo around the head. Tightening the ramp (a smoothstep over
    MATTE_EDGE) relights only pixels that are mostly person; the faint tail counts as background.
    """
    key = ("edge-matte", id(matte))
    if cache is not None and key in cache:
        return cache[key]
    lo, hi = MATTE_EDGE
    m = np.clip((matte.astype(np.float32) - lo) * np.float32(1.0 / (hi - lo)), 0.0, 1.0)
    m = (m * m * (3.0 - 2.0 * m)).astype(np.float32)
    if cache is not None:
        cache[key] = m
    return m


def upsample(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a smooth low-resolution map to ``size`` (w, h)."""
    if (a.shape[1], a.shape[0]) == size:
        return a
    return cv2.resize(a, size, interpolation=cv2.INTER_LINEAR)


def _blend_weights(m: np.ndarray, size: tuple[int, int], cache: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """(m, 1 − m) at the output size, cached for the sizes a document is shown at (preview, full)."""
    key = ("blend", size, id(m))
    if cache is not None and key in cache:
        return cache[key]
    mm = _resize(m, size, cv2.INTER_LINEAR)
    pair = (mm, (1.0 - mm).astype(np.float32))
    if cache is not None:
        for k in [k for k in cache if isinstance(k, tuple) and k[0] == "blend"][:-1]:
            del cache[k]  # keep the two latest output sizes
        cache[key] = pair
    return pair


def apply_gain(rgb_linear: np.ndarray, gain: np.ndarray, bias: np.ndarray, matte: np.ndarray | None,
               cache: dict | None = None) -> np.ndarray:
    """Apply low-res G and B to a photo of any size; outside ``matte`` (if given) the photo is kept.

    All full-resolution work runs in OpenCV's threaded element-wise kernels. Up to a few times the
    matte's size the relit photo is blended with the original through cached per-size matte weights;
    for very large photos the matte is folded into G and B at its own resolution instead (it is no
    sharper than that), leaving one upsampling pair and one multiply-add at full size. Either way
    background pixels come out exactly as the photo.
    """
    h, w = rgb_linear.shape[:2]
    rgb = np.ascontiguousarray(rgb_linear, dtype=np.float32)
    if matte is None:
        out = _times_upsampled(rgb, gain, (w, h))
        cv2.add(out, upsample(bias, (w, h)), dst=out)
        return out
    m = _edge_matte(matte, cache)
    if w * h <= 4 * m.shape[0] * m.shape[1]:
        weight, inverse = _blend_weights(m, (w, h), cache)
        relit = _times_upsampled(rgb, gain, (w, h))
        cv2.add(relit, upsample(bias, (w, h)), dst=relit)
        return cv2.blendLinear(relit, rgb, weight, inverse)
    msize = (m.shape[1], m.shape[0])
    g = _resize(gain, msize, cv2.INTER_LINEAR) - 1.0
    g *= m[..., None]
    g += 1.0
    b = _resize(bias, msize, cv2.INTER_LINEAR) * m[..., None]
    out = _times_upsampled(rgb, g, (w, h))
    cv2.add(out, upsample(b, (w, h)), dst=out)
    return out


def _times_upsampled(rgb: np.ndarray, gain: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``rgb × upsample(gain)``, multiplied into the freshly upsampled array (one full-size buffer fewer to
    allocate and fault in: a 16 MP relight 184 → 126 ms for this step); the same values either way."""
    up = upsample(gain, size)
    if up is gain:  # already at size: never write into the caller's map
        return cv2.multiply(rgb, gain)
    cv2.multiply(up, rgb, dst=up)
    return up


def relight_image(rgb_linear: np.ndarray, ctx: RelightContext, rig: LightRig, analysis: FaceAnalysis, *,
                  shadows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Relit linear image at ``rgb_linear``'s size, and the target shading map (shading size)."""
    gain, bias, target = gain_maps(ctx, rig, shadows=shadows)
    matte = None if rig.relight_background else analysis.matte
    image = apply_gain(rgb_linear, gain, bias, matte, ctx.cache)
    if rig.catchlights and analysis.landmarks is not None:
        scale = rgb_linear.shape[1] / analysis.image_size[0]  # a preview relights a smaller copy
        image = move_catchlights(image, rgb_linear, analysis.landmarks * np.float32(scale), rig, scale, ctx.cache)
    return image, target
