"""Inverting a re-pose's forward map, and cleaning the mask it leaves: the array-level steps of ``view_warp``.

``_splat`` turns "where each source pixel lands" into "where each target pixel comes from" (z-buffered,
sub-pixel); ``_drop_islands`` removes torn-off crumbs from the rendered mask, ``_antialiased`` softens the
alpha where the turned person ends. They know nothing of heads or cameras.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry.view_fill import _grid

SPLAT_TOLERANCE = 0.75  # source pixels a splat may reach (∞-norm) when it proposes a target pixel


def _splat(tx: np.ndarray, ty: np.ndarray, tz: np.ndarray, moving: np.ndarray, static: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Invert the forward map by z-buffered 2×2 splats with a first-order (Jacobian) correction.

    Returns the backward map, where it was rendered, the z-buffer and the local stretch (how many
    target pixels one source pixel spans, the larger singular value of the Jacobian).
    """
    h, w = tx.shape
    n = h * w
    zbuf = np.full(n, -np.inf, np.float32)
    mapx = np.zeros(n, np.float32)
    mapy = np.zeros(n, np.float32)
    stretch = np.ones(n, np.float32)
    g = _grid(h, w)
    sidx = np.flatnonzero(static)
    zbuf[sidx] = tz.ravel()[sidx]
    mapx[sidx] = g[..., 0].ravel()[sidx]
    mapy[sidx] = g[..., 1].ravel()[sidx]

    ys, xs = np.nonzero(moving)
    if len(xs):
        # Jacobian of the forward map by central differences (one-sided on the frame's edge)
        xl, xr = np.maximum(xs - 1, 0), np.minimum(xs + 1, w - 1)
        yu, yd = np.maximum(ys - 1, 0), np.minimum(ys + 1, h - 1)
        dxs = np.maximum(xr - xl, 1).astype(np.float32)
        dys = np.maximum(yd - yu, 1).astype(np.float32)
        a = (tx[ys, xr] - tx[ys, xl]) / dxs
        b = (tx[yd, xs] - tx[yu, xs]) / dys
        c = (ty[ys, xr] - ty[ys, xl]) / dxs
        d = (ty[yd, xs] - ty[yu, xs]) / dys
        det = a * d - b * c
        front = det > 0.02  # folded (back-facing) or crushed samples: their neighbours cover them
        xs, ys, a, b, c, d, det = xs[front], ys[front], a[front], b[front], c[front], d[front], det[front]
        # larger singular value of [[a, b], [c, d]]
        q = a * a + b * b + c * c + d * d
        sv = np.sqrt(0.5 * (q + np.sqrt(np.maximum(q * q - 4 * det * det, 0.0))))
        qx, qy, qz = tx[ys, xs], ty[ys, xs], tz[ys, xs]
        i00, i01, i10, i11 = d / det, -b / det, -c / det, a / det
        fx, fy = np.floor(qx), np.floor(qy)
        parts: list[tuple[np.ndarray, ...]] = []
        for ox in (0.0, 1.0):
            for oy in (0.0, 1.0):
                cx, cy = fx + ox, fy + oy
                ex, ey = cx - qx, cy - qy
                dpx = i00 * ex + i01 * ey
                dpy = i10 * ex + i11 * ey
                ok = ((np.abs(dpx) <= SPLAT_TOLERANCE) & (np.abs(dpy) <= SPLAT_TOLERANCE)
                      & (cx >= 0) & (cx <= w - 1) & (cy >= 0) & (cy <= h - 1))
                parts.append((cy[ok].astype(np.int64) * w + cx[ok].astype(np.int64), qz[ok], xs[ok] + dpx[ok],
                              ys[ok] + dpy[ok], sv[ok]))
        cidx, cz, sx, sy, cs = (np.concatenate(p) for p in zip(*parts, strict=True))
        np.maximum.at(zbuf, cidx, cz)
        win = cz >= zbuf[cidx]
        cidx = cidx[win]
        mapx[cidx] = np.clip(sx[win], 0, w - 1)
        mapy[cidx] = np.clip(sy[win], 0, h - 1)
        stretch[cidx] = cs[win]
    rendered = np.isfinite(zbuf).reshape(h, w)
    return (np.dstack([mapx.reshape(h, w), mapy.reshape(h, w)]), rendered, zbuf.reshape(h, w),
            stretch.reshape(h, w))


def _drop_islands(mask: np.ndarray, min_area: float) -> np.ndarray:
    """``mask`` (uint8 0/1) without its connected pieces smaller than ``min_area`` pixels.

    Where the surface tears (a jaw over the collar, hair against the background) a few splats land
    apart from the person; too big for the opening above to remove, they show as floating crumbs.
    The largest piece is always kept.
    """
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.zeros(n, np.uint8)
    keep[1:] = (areas >= min_area) | (areas == areas.max())
    return keep[labels]


EDGE_SIGMA = 0.7  # working pixels: the blur that anti-aliases the alpha where the turned person ends


def _antialiased(alpha: np.ndarray, cover: np.ndarray) -> np.ndarray:
    """``alpha`` blurred by about a pixel in a thin band along the edge of ``cover``.

    Where the turned surface ends (hair compressed on the far side, the rim of a filled region) alpha
    drops from the matte's value to 0 between one pixel and the next, along a mask's stair-stepped
    boundary: at a shallow angle the steps showed as a jagged edge against the background.
    """
    k = np.ones((3, 3), np.uint8)
    c = cover.astype(np.uint8)
    band = (cv2.dilate(c, k) - cv2.erode(c, k)).astype(bool)
    if not band.any():
        return alpha
    soft = cv2.GaussianBlur(alpha, (0, 0), EDGE_SIGMA)
    return np.where(band, soft, alpha).astype(np.float32)
