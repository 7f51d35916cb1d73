"""Compositing a turned view: the layers a re-pose is made of, and rendering them at any size.

The warp (``view_warp``) runs at a working size; this module applies it to the photo at its own
size. The person layer is the photo with its colours extended past the matte edge (so no background
halo travels with the head), the background is a plate inpainted once from the matte's surroundings,
and the two are composited with the warped alpha. Only the warp's region of interest is recomputed:
everything else is the photo (or the photo relit) as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.geometry.view_fill import _grid, push_pull, reflect_fill
from icportrait_studio.geometry.view_warp import Warp


@dataclass
class Layers:
    """What the composite is made of, at the output size (computed once per photo and size)."""

    foreground: np.ndarray  # HxWx3: the photo with the person's colours extended past the matte edge
    plate: np.ndarray  # HxWx3: the photo with the person inpainted from the surroundings
    matte: np.ndarray  # HxW
    keep: np.ndarray  # HxW: the silhouette kept through a turn


PLATE_MIRROR_REACH = 0.4  # face widths: how deep into the hole the background's mirror image reaches
PLATE_MIRROR_SMOOTH = 0.04  # face widths: σ smoothing the mirror's axis (keeps the copy in one piece)


def _mirror_background(rgb: np.ndarray, good_small: np.ndarray, face_width: float, small: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The background mirrored across the person's outline into the person's region, and its weight.

    What a turned head uncovers lies mostly just beside its old outline, where a membrane fill
    (``push_pull``) shows as a flat, slightly wrong-coloured band against the photo's grainy, mottled
    backdrop. A mirror copies the backdrop's own texture at its own scale, continuous at the outline.
    The reflection is worked out at the fills' small size and applied to the full-size photo through an
    upsampled coordinate map, so the copied texture keeps full resolution. Returns (mirrored image,
    weight: 1 near the outline, fading to 0 at ``PLATE_MIRROR_REACH`` face widths, where a mirror would
    start copying whole objects), and the same two at the small size of ``small`` (``rgb`` reduced).
    """
    h, w = rgb.shape[:2]
    hs, ws = good_small.shape
    holes = ~good_small
    if not holes.any() or not good_small.any():
        return rgb, np.zeros((h, w), np.float32), small, np.zeros((hs, ws), np.float32)
    sx, sy = w / ws, h / hs
    fw_small = face_width / sx
    # the warp's own hole mirror, run on a coordinate field: where each hole pixel takes its backdrop from
    coords, dist = reflect_fill(np.array(_grid(hs, ws)), good_small, holes,
                                max(0.5, PLATE_MIRROR_SMOOTH * fw_small))
    mx, my = coords[..., 0], coords[..., 1]
    # small-grid pixel centres -> full-size pixel coordinates
    map_x = cv2.resize((mx + 0.5) * np.float32(sx) - 0.5, (w, h), interpolation=cv2.INTER_LINEAR)
    map_y = cv2.resize((my + 0.5) * np.float32(sy) - 0.5, (w, h), interpolation=cv2.INTER_LINEAR)
    mirrored = cv2.remap(np.ascontiguousarray(rgb, dtype=np.float32), map_x, map_y, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    reach = max(2.0, PLATE_MIRROR_REACH * fw_small)
    t = np.clip(dist / reach, 0.0, 1.0)
    weight = (1.0 - t * t * (3 - 2 * t)).astype(np.float32)
    weight[good_small] = 1.0
    mirrored_small = cv2.remap(np.ascontiguousarray(small, dtype=np.float32), mx, my, cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
    return mirrored, cv2.resize(weight, (w, h), interpolation=cv2.INTER_LINEAR), mirrored_small, weight


CLEAR = 0.01  # matte below this: the photo's own backdrop, which a turn shows as it is (``composite``)
SEAM_REACH = 0.2  # face widths: how far into the person's old place the fill is shifted to meet the photo


def _meet_the_photo(bg_fill: np.ndarray, fill_small: np.ndarray, small: np.ndarray, m_small: np.ndarray,
                    fw_small: float) -> np.ndarray:
    """``bg_fill`` shifted by a smooth offset so it meets the photo where the person's old outline was.

    A turn shows the photo itself wherever the person never was (``composite``) and the fill where the
    person moved away; the two met in a visible step along the old outline: the fill mirrors the
    backdrop from a little further out (the matte's soft edge and the photo's halo are left out), and a
    backdrop with a gradient or clouds there differs by up to 20 codes. The difference along the outline
    is spread over the fill as a membrane (a seamless-cloning offset) that fades within ``SEAM_REACH``
    face widths, so the fill keeps its texture and matches the photo at the seam. Works at the fills'
    small size (``fill_small``: the fill made there), the offset being smooth; only its reach is touched
    at full size."""
    h, w = bg_fill.shape[:2]
    hs, ws = m_small.shape
    clear = m_small < CLEAR
    if clear.all() or not clear.any():
        return bg_fill
    person = (~clear).astype(np.uint8)
    # the photo right beside the outline (one pixel of the small size): a wider ring averaged a halo hugging
    # the outline with the backdrop beyond it, and the step stayed half as high
    ring = clear & cv2.dilate(person, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))).astype(bool)
    diff = cv2.subtract(np.ascontiguousarray(small, dtype=np.float32), np.ascontiguousarray(fill_small, np.float32))
    offset = push_pull(diff, ring.astype(np.float32))
    depth = cv2.distanceTransform(person, cv2.DIST_L2, 3)  # into the person's old place
    fade = np.exp(-np.square(depth / max(1.0, SEAM_REACH * fw_small))).astype(np.float32)
    fade[clear & ~ring] = 0.0  # beyond the ring the plate is the photo itself (``make_layers``)
    offset = cv2.multiply(offset, cv2.merge([fade] * offset.shape[2]))
    ys, xs = np.nonzero(fade > 1e-3)
    if not len(ys):
        return bg_fill
    # only the offset's reach is upsampled and added at full size (a 16 MP photo: the whole frame cost 0.3 s);
    # the box's edges land within a pixel of the small grid's, harmless for a smooth offset
    y0, y1 = max(0, ys.min() - 1), min(hs, ys.max() + 2)
    x0, x1 = max(0, xs.min() - 1), min(ws, xs.max() + 2)
    fy0, fy1 = round(y0 * h / hs), min(h, round(y1 * h / hs))
    fx0, fx1 = round(x0 * w / ws), min(w, round(x1 * w / ws))
    up = cv2.resize(np.ascontiguousarray(offset[y0:y1, x0:x1]), (fx1 - fx0, fy1 - fy0), interpolation=cv2.INTER_LINEAR)
    bg_fill[fy0:fy1, fx0:fx1] = cv2.add(bg_fill[fy0:fy1, fx0:fx1], up.reshape(fy1 - fy0, fx1 - fx0, -1))
    return bg_fill


def make_layers(rgb: np.ndarray, matte: np.ndarray, keep: np.ndarray, *, work_side: int = 256,
                face_width: float | None = None) -> Layers:
    """Foreground with decontaminated edges and an inpainted background plate, at ``rgb``'s size.

    Both fills run at ``work_side`` (smooth fills need no resolution) and are blended in by the matte.
    With ``face_width`` (pixels of ``rgb``) the plate beside the person's outline is the backdrop
    mirrored across it (``_mirror_background``), fading into the smooth fill deeper in.
    """
    h, w = rgb.shape[:2]
    s = min(1.0, work_side / max(h, w))
    size = (max(4, round(w * s)), max(4, round(h * s)))
    small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    m_small = cv2.resize(matte, size, interpolation=cv2.INTER_AREA)
    inner = cv2.erode((m_small > 0.95).astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    outer = cv2.erode((m_small < 0.02).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(np.float32)
    # full-size blends in OpenCV's threaded kernels (a 16 MP photo: 0.6 s instead of 2.2 s in numpy)
    src = np.ascontiguousarray(rgb, dtype=np.float32)
    m = np.ascontiguousarray(matte, dtype=np.float32)
    fg_fill = cv2.resize(push_pull(small, inner), (w, h), interpolation=cv2.INTER_LINEAR)
    t_fg = cv2.min(cv2.max(cv2.multiply(cv2.subtract(m, 0.6), 1.0 / 0.35), 0.0), 1.0)
    fg = cv2.blendLinear(src, fg_fill, t_fg, cv2.subtract(1.0, t_fg))
    del fg_fill
    fill_small = push_pull(small, outer)
    bg_fill = cv2.resize(fill_small, (w, h), interpolation=cv2.INTER_LINEAR)
    if face_width:
        mirrored, wm, mirrored_small, wm_small = _mirror_background(src, outer > 0.5, face_width, small)
        bg_fill = cv2.blendLinear(mirrored, bg_fill, wm, cv2.subtract(1.0, wm))
        fill_small = cv2.blendLinear(mirrored_small, fill_small, wm_small, cv2.subtract(1.0, wm_small))
    bg_fill = _meet_the_photo(bg_fill, fill_small, small, m_small, (face_width or 0.3 * w) * s)
    bgw = cv2.resize(outer, (w, h), interpolation=cv2.INTER_LINEAR)
    t_bg = cv2.min(cv2.max(cv2.subtract(cv2.multiply(cv2.min(bgw, cv2.subtract(1.0, m)), 1.5), 0.25), 0.0), 1.0)
    t_bg = cv2.max(t_bg, (m < CLEAR).astype(np.float32))  # clear of the person: the photo, as a turn shows it
    plate = cv2.blendLinear(src, bg_fill, t_bg, cv2.subtract(1.0, t_bg))
    return Layers(foreground=fg, plate=plate, matte=m, keep=np.ascontiguousarray(keep, dtype=np.float32))


def _roi_grid(warp: Warp, size: tuple[int, int]) -> tuple[tuple[int, int, int, int], np.ndarray, float, float]:
    """The warp's roi at the output ``size`` (w, h) and, per output pixel in it, roi-local working coords."""
    w, h = size
    hh, ww = warp.shape
    sx, sy = w / ww, h / hh
    x0, y0, x1, y1 = warp.roi
    box = (max(0, int(np.floor(x0 * sx))), max(0, int(np.floor(y0 * sy))),
           min(w, int(np.ceil(x1 * sx))), min(h, int(np.ceil(y1 * sy))))
    bx0, by0, bx1, by1 = box
    grid = np.empty((by1 - by0, bx1 - bx0, 2), np.float32)
    grid[..., 0] = ((np.arange(bx0, bx1, dtype=np.float32) + 0.5) / sx - 0.5 - x0)[None, :]
    grid[..., 1] = ((np.arange(by0, by1, dtype=np.float32) + 0.5) / sy - 0.5 - y0)[:, None]
    return box, grid, sx, sy


def _sample(arr: np.ndarray, grid: np.ndarray, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
    return cv2.remap(arr.astype(np.float32), grid, None, interp, borderMode=cv2.BORDER_REPLICATE)


GRAIN_SIGMA = 1.2  # working pixels: finer detail than this (pores, stubble, hair strands) survives a smooth fill
GRAIN_CLIP = 0.04  # its amplitude is capped, so the mirror's stronger edges (an eye, a lip) do not


def _smooth_into(img: np.ndarray, deep: np.ndarray, grain_sigma: float = 0.0,
                 source: np.ndarray | None = None) -> np.ndarray:
    """Replace ``img`` by a smooth membrane where ``deep`` → 1, pulled in from where it is 0.

    ``source`` (0..1) limits what the membrane is pulled from: the person's own pixels around a hole,
    so a cheek turning into view continues the cheek (and the hair and collar it meets) instead of
    fading into the pale background beside it. (Pulling from the skin alone looks a touch cleaner on
    one photo but paints the shaded rim of a face as bright as its middle: the turn-and-back test
    loses 0.006 SSIM with it.) With ``grain_sigma`` (pixels) the mirror's fine grain,
    weakened and clipped, is laid over the membrane, so a deep fill keeps the skin's texture without
    copying its features.
    """
    h, w = img.shape[:2]
    f = 4 if min(h, w) >= 64 else 1
    size = (max(1, w // f), max(1, h // f))
    small = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    pull = (deep < 0.5).astype(np.float32)
    if source is not None and float((source > 0.5).sum()) >= 16 * f * f:
        pull *= (source > 0.5)
    wts = cv2.resize(pull, size, interpolation=cv2.INTER_AREA)
    out = np.array(img, dtype=np.float32, copy=True)
    ys, xs = np.nonzero(deep > 0)
    if not len(ys):
        return out
    # everything below happens in the box of the hole (on a 16 MP re-pose the head's whole roi was
    # blended, 0.3 s, for a hole a fraction of its size)
    y0, y1 = max(0, ys.min() - 8), min(h, ys.max() + 9)
    x0, x1 = max(0, xs.min() - 8), min(w, xs.max() + 9)
    box = (slice(y0, y1), slice(x0, x1))
    smooth = cv2.resize(push_pull(small, wts), (w, h), interpolation=cv2.INTER_LINEAR)[box]
    sub = out[box]
    if grain_sigma > 0:
        smooth += np.clip(sub - cv2.GaussianBlur(sub, (0, 0), grain_sigma), -GRAIN_CLIP, GRAIN_CLIP)
    d = np.ascontiguousarray(deep[box], dtype=np.float32)
    out[box] = cv2.blendLinear(np.ascontiguousarray(sub), np.ascontiguousarray(smooth), 1.0 - d, d)
    return out


SEAM_SIGMA = 0.8  # working pixels: the blur laid over the seam between seen and synthesised content
SEAM_JUMP = 4.0  # source pixels: neighbours this far apart in the photo meet at an occlusion edge


def _occlusion_edges(mp: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """uint8 mask of the pixels where the backward map jumps between neighbours (one surface in front of
    another: the nose over the far cheek, hair over the face), within ``cover``."""
    jump = np.zeros(mp.shape[:2], np.uint8)
    mx, my = mp[..., 0], mp[..., 1]
    dx = (np.abs(mx[:, 1:] - mx[:, :-1]) > SEAM_JUMP) | (np.abs(my[:, 1:] - my[:, :-1]) > SEAM_JUMP)
    dy = (np.abs(mx[1:] - mx[:-1]) > SEAM_JUMP) | (np.abs(my[1:] - my[:-1]) > SEAM_JUMP)
    jump[:, 1:] |= dx
    jump[:, :-1] |= dx
    jump[1:] |= dy
    jump[:-1] |= dy
    return jump & cover.astype(np.uint8)


def _low_pass(img: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of ``sigma`` pixels; a wide one is run at a reduced size (a 16 MP re-pose blurs its
    seams by ~8 px: at full size that alone cost 0.3 s)."""
    f = sigma / 2.0
    if f < 1.5:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    size = (max(1, round(w / f)), max(1, round(h / f)))
    small = cv2.GaussianBlur(cv2.resize(img, size, interpolation=cv2.INTER_AREA), (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _soften_seams(img: np.ndarray, warp: Warp, grid: np.ndarray, scale: float) -> np.ndarray:
    """Blur ``img`` (the warped person, roi at the output size) along the seam between what the photo saw
    and what was synthesised.

    The two sides come from different parts of the photo and meet along a pixel mask's boundary: where
    that boundary runs at a shallow angle (the hair's lower edge on the side turning into view) its
    one-pixel steps showed as a staircase. The same holds where one surface passes in front of another
    (the backward map jumps: hair over the far cheek). A blur of about a pixel across the seam turns the
    steps into a smooth edge and leaves everything else as sharp as it was.
    """
    k = np.ones((3, 3), np.uint8)
    rendered, filled = warp.rendered.astype(np.uint8), warp.filled.astype(np.uint8)
    seam = (cv2.dilate(rendered, k) & filled) | (cv2.dilate(filled, k) & rendered)
    seam |= _occlusion_edges(warp.map, warp.rendered | warp.filled)
    if not seam.any():
        return img
    band = cv2.GaussianBlur(cv2.dilate(seam, k).astype(np.float32), (0, 0), 0.8)
    # the band's box, found at the working size and carried to the output's pixels (the grid is monotonic)
    wy, wx = np.nonzero(band > 0.01)
    pad = 3.0 * SEAM_SIGMA + 1.0
    x0 = int(np.searchsorted(grid[0, :, 0], wx.min() - pad))
    x1 = int(np.searchsorted(grid[0, :, 0], wx.max() + pad, side="right"))
    y0 = int(np.searchsorted(grid[:, 0, 1], wy.min() - pad))
    y1 = int(np.searchsorted(grid[:, 0, 1], wy.max() + pad, side="right"))
    if x1 <= x0 or y1 <= y0:
        return img
    box = (slice(y0, y1), slice(x0, x1))
    wb = np.clip(_sample(band, np.ascontiguousarray(grid[box])) * 1.5, 0.0, 1.0)
    sub = np.ascontiguousarray(img[box], dtype=np.float32)
    soft = _low_pass(sub, SEAM_SIGMA * scale)
    img[box] = cv2.blendLinear(soft, sub, wb, 1.0 - wb)  # ``img`` is the caller's fresh array: in place
    return img


def composite(warp: Warp, layers: Layers, *, original: np.ndarray | None = None,
              relight=None, relight_plate: bool = False, cubic: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Render the turned view at the layers' size: (image, person alpha).

    ``original`` is what unmoved pixels show (the photo, or the photo relit); ``relight(crop, box)``
    relights a crop of the foreground (and of the plate if ``relight_plate``) the same way. Only the
    warp's roi is recomputed.
    """
    fg, bg, matte = layers.foreground, layers.plate, layers.matte
    h, w = fg.shape[:2]
    base = original if original is not None else fg * matte[..., None] + bg * (1 - matte[..., None])
    out, alpha = base.astype(np.float32, copy=True), matte.copy()
    if warp.identity:
        return out, alpha
    box, grid, sx, sy = _roi_grid(warp, (w, h))
    bx0, by0, bx1, by1 = box
    if bx1 <= bx0 or by1 <= by0:
        return out, alpha
    off = _sample(warp.offsets, grid)
    mx = off[..., 0] * np.float32(sx) + (np.arange(bx1 - bx0, dtype=np.float32))[None, :]
    my = off[..., 1] * np.float32(sy) + (np.arange(by1 - by0, dtype=np.float32))[:, None]
    a = np.clip(_sample(warp.alpha, grid), 0.0, 1.0)
    fg_c = fg[by0:by1, bx0:bx1]
    bg_c = bg[by0:by1, bx0:bx1]
    if relight is not None:
        fg_c = relight(fg_c, box)
        if relight_plate:
            bg_c = relight(bg_c, box)
    fgw = cv2.remap(fg_c, mx, my, cv2.INTER_CUBIC if cubic else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if warp.deep is not None and warp.deep.max() > 0.01:
        # on the person layer, before the background is mixed in at its edge
        d = np.clip(_sample(warp.deep, grid), 0.0, 1.0)
        fgw = _smooth_into(fgw, d, GRAIN_SIGMA * max(1.0, min(sx, sy)), (a > 0.9).astype(np.float32))
    fgw = _soften_seams(fgw, warp, grid, max(sx, sy))
    inv_a = np.ascontiguousarray(1.0 - a, dtype=np.float32)
    res = cv2.blendLinear(np.ascontiguousarray(bg_c, dtype=np.float32), np.ascontiguousarray(fgw, dtype=np.float32),
                          inv_a, np.ascontiguousarray(a, dtype=np.float32))
    # pixels that show what they showed before stay the photo's own (static edges and detail exact)
    src_matte = layers_matte_at(warp, matte)
    cover = warp.rendered | warp.filled
    still = ((np.abs(warp.offsets).max(axis=2) < 1e-3) & warp.rendered) | (~cover & (src_matte < 0.01))
    still = cv2.erode(still.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    u = np.clip(_sample(still, grid), 0.0, 1.0)
    u = np.ascontiguousarray(u, dtype=np.float32)
    out[by0:by1, bx0:bx1] = cv2.blendLinear(res, np.ascontiguousarray(base[by0:by1, bx0:bx1], dtype=np.float32),
                                            1.0 - u, u)
    alpha[by0:by1, bx0:bx1] = a * (1.0 - u) + matte[by0:by1, bx0:bx1] * u
    return out, alpha


def layers_matte_at(warp: Warp, matte_full: np.ndarray) -> np.ndarray:
    """The source matte over the warp's roi at the working size (from a matte of any size)."""
    hh, ww = warp.shape
    x0, y0, x1, y1 = warp.roi
    if matte_full.shape[:2] != (hh, ww):
        matte_full = cv2.resize(matte_full, (ww, hh), interpolation=cv2.INTER_AREA)
    return matte_full[y0:y1, x0:x1]


def sample_box(values: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """A low-resolution field (e.g. a gain map) resampled over ``box`` of an image of ``size`` (w, h)."""
    w, h = size
    vh, vw = values.shape[:2]
    x0, y0, x1, y1 = box
    grid = np.empty((y1 - y0, x1 - x0, 2), np.float32)
    grid[..., 0] = ((np.arange(x0, x1, dtype=np.float32) + 0.5) * (vw / w) - 0.5)[None, :]
    grid[..., 1] = ((np.arange(y0, y1, dtype=np.float32) + 0.5) * (vh / h) - 0.5)[:, None]
    return _sample(values, grid)


def warp_channel(warp: Warp, values: np.ndarray) -> np.ndarray:
    """Warp a full-size per-pixel array (e.g. the file's own alpha) with the same backward map."""
    out = values.astype(np.float32, copy=True)
    if warp.identity:
        return out
    h, w = values.shape[:2]
    box, grid, sx, sy = _roi_grid(warp, (w, h))
    bx0, by0, bx1, by1 = box
    if bx1 <= bx0 or by1 <= by0:
        return out
    off = _sample(warp.offsets, grid)
    mx = off[..., 0] * np.float32(sx) + np.arange(bx0, bx1, dtype=np.float32)[None, :]
    my = off[..., 1] * np.float32(sy) + np.arange(by0, by1, dtype=np.float32)[:, None]
    out[by0:by1, bx0:bx1] = cv2.remap(values.astype(np.float32), mx, my, cv2.INTER_LINEAR,
                                      borderMode=cv2.BORDER_REPLICATE)
    return out


def remap_small(values: np.ndarray, warp: Warp) -> np.ndarray:
    """Warp a low-resolution per-pixel field (e.g. a shading map) with the same turn."""
    if warp.identity:
        return values.copy()
    h, w = values.shape[:2]
    hh, ww = warp.shape
    mp = warp.full_map()
    if (ww, hh) != (w, h):
        off = cv2.resize(mp - _grid(hh, ww), (w, h), interpolation=cv2.INTER_AREA) * np.float32(w / ww)
        mp = _grid(h, w) + off
    return cv2.remap(values, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
