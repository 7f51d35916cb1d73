"""Re-pose a portrait: turn the head by (yaw, pitch) by reprojecting the photo through its geometry.

Every pixel of the person is lifted to 3D with the completed depth (the mesh on the face, the
inflated surface on hair, ears, neck and shoulders) and a perspective camera, turned about the
head's pivot by an angle scaled by its *rigidity* (1 on the head, fading to 0 down the neck, so the
shoulders stay put) and projected back. The forward map is inverted by splatting: each source pixel
proposes the 2×2 target pixels around where it lands, corrected to first order through the local
Jacobian, and a z-buffer keeps the nearest (``view_splat``). That gives a dense, sub-pixel backward map for
``cv2.remap`` at a working size, upsampled smoothly to the output size.

What the photo never saw is synthesised, never stretched:

* the head keeps the *shape* of its outline (a head is close to round, so the outline barely
  changes in a turn; it travels with the skull's centre, which swings about the pivot in front of
  it); the strip between that outline and the turned content (the far side of the head, an ear,
  hair beyond the frame) is filled by *reflecting* the nearest visible texture across the boundary,
  so skin and hair keep their grain instead of being smeared into streaks; deep inside a wide hole,
  where a mirror would copy a whole feature of the face (a second eye), a smooth fill takes over;
* surfaces stretched too thin to show (beyond ``MAX_STRETCH``) count as unseen, pinholes and thin
  cracks are closed by interpolating the map;
* what the person no longer covers shows the background plate (``view_layers``).

The geometry is given as plain arrays (``WarpGeometry``), which keeps this testable without
mediapipe; ``view_setup.warp_geometry`` builds it from a ``FaceAnalysis``, and
``view_layers.composite`` renders a warp at the photo's own size. ``forward_flow`` gives the
reference → view correspondences, ``carry_geometry`` the geometry in the turned view (to chain turns).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.geometry.camera import OUTLINE_PIVOT_FORWARD, PIVOT_FORWARD, PerspectiveCamera, rotate_fields
from icportrait_studio.geometry.view_fill import (
    _box_fill,
    _dilate,
    _grid,
    _nearest,
    _smoothstep,
    extend_nearest,
    reflect_fill,
)
from icportrait_studio.geometry.view_splat import _antialiased, _drop_islands, _splat

STATIC = 1e-3  # rigidity below this is treated as not moving at all


@dataclass
class WarpGeometry:
    """Source-view geometry at one working size (all arrays HxW float32)."""

    depth: np.ndarray  # toward the camera, working pixels; continuous across the silhouette
    matte: np.ndarray  # soft person matte in [0, 1]
    rigidity: np.ndarray  # 1 turns with the head, 0 stays (shoulders, background)
    camera: PerspectiveCamera  # at the working size
    pivot: tuple[float, float, float]  # (u, v, depth), working pixels
    keep: np.ndarray | None = None  # silhouette kept through the turn; default matte × rigidity
    occlusion_bias: float = 0.0  # depth advantage of turning parts over static ones (chin over chest)
    face_width: float = 0.0  # working pixels; 0: a quarter of the frame's short side
    face: np.ndarray | None = None  # float32 HxW, 1 on the face (features a mirror must not duplicate)
    center: tuple[float, float, float] | None = None  # centre of the kept outline (u, v, depth); None: pivot
    features: np.ndarray | None = None  # float32 HxW, 1 on the eyes, brows and lips (never mirrored, at any depth)

    @property
    def scale(self) -> float:
        """The face's size, for the few lengths that are set relative to it."""
        return self.face_width if self.face_width > 0 else 0.25 * min(self.shape)

    @property
    def shape(self) -> tuple[int, int]:
        return self.depth.shape[:2]  # type: ignore[return-value]

    @property
    def keep_alpha(self) -> np.ndarray:
        return self.keep if self.keep is not None else self.matte * self.rigidity


@dataclass
class Warp:
    """A backward map from the turned view to the photo, at the working size.

    Only the region of interest ``roi`` (x0, y0, x1, y1) changes: the arrays cover it alone (the
    head and where it moves to); outside it every pixel shows itself.
    """

    shape: tuple[int, int]  # (h, w) of the working frame
    roi: tuple[int, int, int, int]
    map: np.ndarray  # float32 hxwx2 over the roi: the source pixel (x, y) each target pixel shows (frame coords)
    rendered: np.ndarray  # bool: target pixels the photo saw (visible source content)
    filled: np.ndarray  # bool: target pixels synthesised from the visible side
    alpha: np.ndarray  # float32: the person's alpha in the target view
    zbuf: np.ndarray  # float32: nearest depth per target pixel (-inf where nothing landed)
    forward: tuple[np.ndarray, np.ndarray, np.ndarray]  # tx, ty (frame coords), tz per source pixel of the roi
    deep: np.ndarray | None = None  # float32: 1 deep inside a wide hole, where a smooth fill replaces the mirror
    identity: bool = False
    angles: tuple[float, float] = (0.0, 0.0)  # the (yaw, pitch) it turns by

    @property
    def offsets(self) -> np.ndarray:
        x0, y0, x1, y1 = self.roi
        return self.map - _grid(y1 - y0, x1 - x0) - np.array([x0, y0], np.float32)

    def full(self, name: str, outside) -> np.ndarray:
        """One of the roi arrays pasted into a frame-sized array filled with ``outside``."""
        h, w = self.shape
        arr = getattr(self, name)
        out = np.empty((h, w, *arr.shape[2:]), arr.dtype)
        out[...] = outside
        x0, y0, x1, y1 = self.roi
        out[y0:y1, x0:x1] = arr
        return out

    def person_alpha(self, matte: np.ndarray) -> np.ndarray:
        """The person's alpha over the whole working frame (the source ``matte`` where nothing moves)."""
        out = matte.astype(np.float32, copy=True)
        if not self.identity:
            x0, y0, x1, y1 = self.roi
            out[y0:y1, x0:x1] = self.alpha
        return out

    def full_map(self) -> np.ndarray:
        h, w = self.shape
        mp = _grid(h, w).copy()
        x0, y0, x1, y1 = self.roi
        mp[y0:y1, x0:x1] = self.map
        return mp


def _crop(geom: WarpGeometry, box: tuple[int, int, int, int]) -> WarpGeometry:
    """The geometry of a sub-rectangle, with the camera and pivot moved into its coordinates."""
    x0, y0, x1, y1 = box
    cam = geom.camera
    return WarpGeometry(depth=geom.depth[y0:y1, x0:x1], matte=geom.matte[y0:y1, x0:x1],
                        rigidity=geom.rigidity[y0:y1, x0:x1],
                        camera=PerspectiveCamera(cam.focal, cam.cx - x0, cam.cy - y0),
                        pivot=(geom.pivot[0] - x0, geom.pivot[1] - y0, geom.pivot[2]),
                        keep=geom.keep_alpha[y0:y1, x0:x1], occlusion_bias=geom.occlusion_bias,
                        face_width=geom.scale,
                        face=None if geom.face is None else geom.face[y0:y1, x0:x1],
                        center=None if geom.center is None else (geom.center[0] - x0, geom.center[1] - y0,
                                                                 geom.center[2]),
                        features=None if geom.features is None else geom.features[y0:y1, x0:x1])


# ------------------------------------------------------------------------------------------ forward


def forward_map(geom: WarpGeometry, yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where each source pixel lands (tx, ty) and its depth there (tz); static pixels stay exactly."""
    h, w = geom.shape
    g = _grid(h, w)
    u, v = g[..., 0], g[..., 1]
    cam = geom.camera
    depth = geom.depth
    x, y, z = cam.unproject(u, v, depth)
    px, py, pz = cam.unproject(np.float32(geom.pivot[0]), np.float32(geom.pivot[1]), np.float32(geom.pivot[2]))
    rig = geom.rigidity
    solid = bool((rig >= 1.0).all())
    xr, yr, zr = rotate_fields(x - px, y - py, z - pz, yaw if solid else yaw * rig, pitch if solid else pitch * rig)
    tx, ty = cam.project(xr + px, yr + py, zr + pz)
    tz = zr + pz
    if not solid:
        static = rig < STATIC
        tx = np.where(static, u, tx)
        ty = np.where(static, v, ty)
        tz = np.where(static, depth, tz)
    return tx.astype(np.float32), ty.astype(np.float32), tz.astype(np.float32)


def transform_points(geom: WarpGeometry, points: np.ndarray, yaw: float, pitch: float) -> np.ndarray:
    """Move (N, 3) points (working pixels, z = depth) the way the warp moves the pixels under them."""
    pts = np.asarray(points, np.float32)
    h, w = geom.shape
    xi = np.clip(pts[:, 0], 0, w - 1)
    yi = np.clip(pts[:, 1], 0, h - 1)
    rig = cv2.remap(geom.rigidity, xi[None, :], yi[None, :], cv2.INTER_LINEAR)[0]
    cam = geom.camera
    x, y, z = cam.unproject(pts[:, 0], pts[:, 1], pts[:, 2])
    px, py, pz = cam.unproject(np.float32(geom.pivot[0]), np.float32(geom.pivot[1]), np.float32(geom.pivot[2]))
    xr, yr, zr = rotate_fields(x - px, y - py, z - pz, yaw * rig, pitch * rig)
    tx, ty = cam.project(xr + px, yr + py, zr + pz)
    return np.stack([tx, ty, zr + pz], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------------------ inverse


def _bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    cols = np.flatnonzero(mask.any(axis=0))
    rows = np.flatnonzero(mask.any(axis=1))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def _expand(box: tuple[int, int, int, int], m: int, w: int, h: int) -> tuple[int, int, int, int]:
    return max(0, box[0] - m), max(0, box[1] - m), min(w, box[2] + m), min(h, box[3] + m)


def _moved_outline(geom: WarpGeometry, yaw: float, pitch: float) -> np.ndarray:
    """The kept silhouette in the turned view: a round head's outline does not change shape when it
    turns, it only travels with the head's centre (which swings about the pivot in front of it).

    It swings as far as about a pivot ``OUTLINE_PIVOT_FORWARD`` of the way toward the nose, not the
    face's ``PIVOT_FORWARD``: the centre sits behind both on the head's forward axis, so that is the
    rigid swing scaled by their ratio. Swung the whole way, the outline clipped the far side's bob and
    left backdrop beside the near cheek (tests in test_view.py)."""
    keep = geom.keep_alpha.astype(np.float32)
    if geom.center is None:
        return keep
    c = np.array(geom.center, np.float32)
    moved = transform_points(geom, c[None, :], yaw, pitch)[0]
    swing = OUTLINE_PIVOT_FORWARD / PIVOT_FORWARD
    dx, dy = float(moved[0] - c[0]) * swing, float(moved[1] - c[1]) * swing
    if abs(dx) < 1e-3 and abs(dy) < 1e-3:
        return keep
    h, w = keep.shape
    shift = np.array([[1, 0, dx], [0, 1, dy]], np.float32)
    return cv2.warpAffine(keep, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


OUTLINE_CLOSE = 0.3  # face widths: gaps in the turned surface narrower than this still count as covered


def _far_side(geom: WarpGeometry, yaw: float, pitch: float) -> np.ndarray | None:
    """Weights (HxW, 0..1) of the side the face turns toward, where the head's surface recedes from the
    viewer (None: no clear side, a turn too small to move a point ahead of the head's centre)."""
    if geom.center is None:
        return None
    c = np.array(geom.center, np.float32)
    ahead = c + np.array([0.0, 0.0, 0.5 * geom.scale], np.float32)  # a point on the face, ahead of the centre
    moved = transform_points(geom, np.stack([c, ahead]), yaw, pitch)
    away = (moved[1, :2] - ahead[:2]) - (moved[0, :2] - c[:2])
    norm = float(np.linalg.norm(away))
    if norm < 0.5:
        return None
    away /= norm
    h, w = geom.shape
    g = _grid(h, w)
    side = ((g[..., 0] - moved[0, 0]) * away[0] + (g[..., 1] - moved[0, 1]) * away[1]) / geom.scale
    return _smoothstep(side, 0.1, 0.3)


def _receding_outline(geom: WarpGeometry, keep: np.ndarray, alpha: np.ndarray, far: np.ndarray | None
                      ) -> np.ndarray:
    """``keep`` (the outline moved with the head's centre) held to the turned surface on the far side.

    On the side the face turns toward, the head's own surface rotates away from the viewer; a skull
    seen from the front has its widest section at the ears, so its outline there shrinks toward the
    centre rather than travel with it, and the depth map's rounded edge recedes further still. The band
    between that edge and the moved outline would be synthesised from the face as ghostly hair: on the
    far side (``far``, from ``_far_side``) the outline is where the turned surface reaches (gaps narrower
    than OUTLINE_CLOSE closed). The near side keeps the moved outline: there the back of the head turns
    into view.
    """
    if far is None:
        return keep
    k = int(OUTLINE_CLOSE * geom.scale) | 1
    cover = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
    cover = cv2.GaussianBlur(cv2.dilate(cover, np.ones((5, 5), np.uint8)).astype(np.float32), (0, 0), 1.0)
    return (keep * (1.0 - far) + np.minimum(keep, cover) * far).astype(np.float32)


NEAR_CLOSE = 0.35  # face widths, at a 30° turn: notches in the outline this wide close on the near side


def _near_close_size(geom: WarpGeometry, yaw: float) -> int:
    """The near side's closing kernel (pixels): NEAR_CLOSE face widths at 30°, with the turn's sine."""
    return round(NEAR_CLOSE * geom.scale * abs(np.sin(np.radians(yaw))) / 0.5)


def _near_side_outline(geom: WarpGeometry, keep: np.ndarray, yaw: float) -> np.ndarray:
    """``keep`` with its notches closed on the side that turns into view, above the chin.

    A head turning away from one side shows that side: the ear and the skin below a bob of hair, in
    the notch between the hair's lower edge and the jaw, where the photo saw background. Kept as it
    was, the notch showed the backdrop as a wedge cut into the head. Closing it (the kernel grows with
    the turn, so a small turn adds a sliver) makes the region a hole the fill covers with the hair's
    and the skin's texture. Only beside and above the face: the background between neck and shoulders
    stays background.
    """
    k = _near_close_size(geom, yaw)
    if geom.center is None or geom.face is None or k < 3:
        return keep
    rows = np.flatnonzero((geom.face > 0.5).any(axis=1))
    if not len(rows):
        return keep
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k | 1, k | 1))
    closed = cv2.morphologyEx(keep, cv2.MORPH_CLOSE, kernel, borderType=cv2.BORDER_REPLICATE)
    h, w = keep.shape
    g = _grid(h, w)
    c = np.array(geom.center, np.float32)
    cx = float(transform_points(geom, c[None, :], yaw, 0.0)[0, 0])
    near = _smoothstep((cx - g[..., 0]) * np.sign(yaw) / geom.scale, 0.1, 0.3)
    above = _smoothstep((float(rows[-1]) - g[..., 1]) / geom.scale, 0.0, 0.1)
    return np.maximum(keep, closed * near * above).astype(np.float32)


def _identity_warp(geom: WarpGeometry) -> Warp:
    e = np.zeros((0, 0), np.float32)
    return Warp(shape=geom.shape, roi=(0, 0, 0, 0), map=np.zeros((0, 0, 2), np.float32), rendered=e.astype(bool),
                filled=e.astype(bool), alpha=e, zbuf=e, forward=(e, e, e), identity=True)


REFLECT_DEPTH = 0.06  # face widths: how deep into a hole mirrored texture reaches before a smooth fill
REFLECT_SMOOTH = 0.04  # face widths: σ smoothing the mirror's axis, so mirrored texture stays in one piece
MAX_STRETCH = 3.5  # beyond this a surface is smeared too thin to show: it is synthesised instead
CRUMB_SIZE = 0.08  # face widths: splats cut off from the person and smaller than this square are dropped


def backward_warp(geom: WarpGeometry, yaw: float, pitch: float) -> Warp:
    """The backward map, alpha and fill masks for turning the head by (yaw, pitch) degrees."""
    h, w = geom.shape
    domain_all = _dilate(geom.matte > 0.01, 1)
    moving_all = domain_all & (geom.rigidity >= STATIC)
    if (abs(yaw) < 1e-6 and abs(pitch) < 1e-6) or not moving_all.any():
        return _identity_warp(geom)
    box = _expand(_bbox(moving_all), 2, w, h)
    btx, bty, btz = forward_map(_crop(geom, box), yaw, pitch)
    bm = moving_all[box[1]:box[3], box[0]:box[2]]
    tbox = (int(np.floor(btx[bm].min())) + box[0], int(np.floor(bty[bm].min())) + box[1],
            int(np.ceil(btx[bm].max())) + 1 + box[0], int(np.ceil(bty[bm].max())) + 1 + box[1])
    near = _near_close_size(geom, yaw)  # the near side's closed notches may reach past the moved head
    roi = _expand((min(box[0], tbox[0]), min(box[1], tbox[1]), max(box[2], tbox[2]), max(box[3], tbox[3])),
                  4 + near // 2, w, h)
    x0, y0, x1, y1 = roi
    sub = _crop(geom, roi)
    rh, rw = y1 - y0, x1 - x0
    g = _grid(rh, rw)
    tx, ty, tz = g[..., 0].copy(), g[..., 1].copy(), sub.depth.astype(np.float32).copy()
    sl = (slice(box[1] - y0, box[3] - y0), slice(box[0] - x0, box[2] - x0))
    tx[sl], ty[sl], tz[sl] = btx + (box[0] - x0), bty + (box[1] - y0), btz

    matte = sub.matte.astype(np.float32)
    keep = _moved_outline(sub, yaw, pitch)
    domain = domain_all[y0:y1, x0:x1]
    moving = moving_all[y0:y1, x0:x1]
    z_eff = tz + np.float32(geom.occlusion_bias) * sub.rigidity
    mp, rendered, zbuf, stretch = _splat(tx, ty, z_eff, moving, domain & ~moving)

    # smeared splats are dropped; pinholes and thin cracks (a surface stretched 2-4×) are closed by
    # interpolating the map across them, wider holes are synthesised below (or left to the background)
    rendered &= ~(stretch > MAX_STRETCH)
    for k in (3, 5):
        closed = cv2.morphologyEx(rendered.astype(np.uint8), cv2.MORPH_CLOSE, np.ones((k, k), np.uint8)).astype(bool)
        pin = closed & ~rendered
        if pin.any():
            smooth, den = _box_fill(mp - g, rendered, k)
            pin &= den > 0.25
            mp = np.where(pin[..., None], g + smooth, mp)
            rendered = rendered | pin

    alpha = np.where(rendered, cv2.remap(matte, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR), 0.0).astype(np.float32)
    # crumbs: isolated splats of the matte's faint edge, scattered where the surface stretched; and
    # small solid pieces hanging off the head by a faint edge only (a collar's rim near the jaw, torn
    # from the rest where rigidity fades): their soft fringe kept them joined to the head
    crumb = (CRUMB_SIZE * geom.scale) ** 2
    core = cv2.morphologyEx((alpha > 0.5).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    near = cv2.dilate(_drop_islands(core, crumb), np.ones((7, 7), np.uint8))
    solid = cv2.morphologyEx((alpha > 0.02).astype(np.uint8), cv2.MORPH_OPEN, np.ones((3, 3), np.uint8)) & near
    before = alpha > 0.5
    alpha *= _drop_islands(solid, crumb)
    # a crumb dropped inside the kept outline is a hole to fill, not background: left as it was, a lone
    # splat in a filled region showed the background plate through the collar as a bright speck
    dropped = before & (alpha < 0.5)
    # texture worth copying: inside the head, clear of the matte's mixed edge pixels
    k5 = np.ones((5, 5), np.uint8)  # the matte's mixed edge band (also the head's rim, below)
    inner = cv2.erode((matte > 0.9).astype(np.uint8), k5).astype(np.float32)
    src_ok = cv2.remap(np.minimum(inner, sub.rigidity), mp[..., 0], mp[..., 1], cv2.INTER_LINEAR)
    far = _far_side(sub, yaw, pitch)
    keep = _receding_outline(sub, keep, alpha, far)
    keep = _near_side_outline(sub, keep, yaw)
    need = np.maximum(alpha, keep) > 0.5
    good = rendered & (src_ok > 0.5) & ~dropped
    # the turned head's own rim: photo pixels at the matte's edge (not texture worth copying, see
    # ``inner``) that still lie on the kept outline's edge are the silhouette as the photo saw it
    # (compressed on the far side); synthesised, they blurred the far cheek into the backdrop. Only what
    # turns with the head keeps its rim (a still collar's edge beside a turned jaw is filled as before)
    src_rig = cv2.remap(sub.rigidity, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR)
    rim = rendered & (keep > 0.5) & ~cv2.erode((keep > 0.5).astype(np.uint8), k5).astype(bool) & (src_rig >= 0.5)
    rim &= (far > 0.5) if far is not None else False  # on the near side the old edge is stretched
    fill = (need & ~rendered) | ((keep > 0.5) & ~good & ~rim) | (need & dropped)
    if fill.any():
        fill = _dilate(fill, 2) & ~good & ~rim & (np.maximum(alpha, keep) > 0.01)
        mp, dist = reflect_fill(mp, good, fill, REFLECT_SMOOTH * geom.scale)
        alpha = np.where(fill | rim, np.maximum(keep, alpha), alpha).astype(np.float32)
        # a mirror deep inside a wide hole would copy whole features (a second eye): where it would
        # reflect the face, fade to a smooth fill; hair and skin elsewhere keep their mirrored texture
        depth = REFLECT_DEPTH * geom.scale
        deep = np.where(fill, _smoothstep(dist, depth, 2.0 * depth), 0.0).astype(np.float32)
        if sub.face is not None:
            deep *= cv2.remap(sub.face, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR)
        else:
            deep[:] = 0.0
        # an eye, brow or lip reflected even close to the boundary reads as a second one (a ghost eye
        # corner where a tight crop's edge is filled): those take the smooth fill at any depth
        if sub.features is not None:
            on_feature = cv2.remap(sub.features, mp[..., 0], mp[..., 1], cv2.INTER_LINEAR)
            deep = np.maximum(deep, np.where(fill, on_feature, 0.0)).astype(np.float32)
    else:
        deep = np.zeros(fill.shape, np.float32)
    rendered &= ~fill
    cover = rendered | fill
    alpha = _antialiased(alpha, cover)
    if not cover.all():
        # extend the displacement a little past the person so upsampling the map stays clean at its edge
        off = mp - g
        ext, den = _box_fill(off, cover, 5)
        ring = ~cover & (den > 1e-3)
        off = np.where(cover[..., None], off, np.where(ring[..., None], ext, 0.0))
        mp = g + off
    mp = (mp + np.array([x0, y0], np.float32)).astype(np.float32)
    return Warp(shape=(h, w), roi=roi, map=mp, rendered=rendered, filled=fill, alpha=alpha, zbuf=zbuf,
                forward=(tx + np.float32(x0), ty + np.float32(y0), tz), deep=deep, angles=(yaw, pitch))


def carry_geometry(geom: WarpGeometry, warp: Warp) -> WarpGeometry:
    """The geometry as it lies in the turned view, so a turn can be chained without a new analysis.

    Each target pixel takes the turned depth and the rigidity of the source point it shows; the
    pivot stays (it is the rotation's fixed point) and the matte becomes the warp's alpha.
    """
    if warp.identity:
        return geom
    x0, y0, x1, y1 = warp.roi
    local = (warp.map - np.array([x0, y0], np.float32)).astype(np.float32)
    tz = warp.forward[2]
    cover = warp.rendered | warp.filled
    d_t = cv2.remap(tz, local[..., 0], local[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # synthesised pixels show mirrored texture, not mirrored depth: continue the seen surface into them,
    # bending down to the outline's depth (the skull's centre) at the outline, as a round head does
    if warp.rendered.any() and warp.filled.any():
        ny, nx, da = _nearest(warp.rendered)
        db = cv2.distanceTransform(cover.astype(np.uint8), cv2.DIST_L2, 3)
        t = db / np.maximum(da + db, 1e-6)
        rim = float((geom.center or geom.pivot)[2])
        d_t = np.where(warp.filled, d_t[ny, nx] * t + rim * (1.0 - t), d_t)
    d_t = extend_nearest(d_t, cover) if cover.any() else d_t
    r_src = geom.rigidity[y0:y1, x0:x1]
    r_t = cv2.remap(r_src, local[..., 0], local[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    depth = geom.depth.copy()
    depth[y0:y1, x0:x1] = d_t
    rigidity = geom.rigidity.copy()
    rigidity[y0:y1, x0:x1] = np.where(cover, r_t, r_src)
    matte = warp.person_alpha(geom.matte)
    keep = matte * _smoothstep(rigidity, 0.6, 0.95) if geom.keep is not None else None
    face = _carry_field(geom.face, local, cover, warp.roi)
    features = _carry_field(geom.features, local, cover, warp.roi)
    center = None
    if geom.center is not None:
        moved = transform_points(geom, np.array([geom.center], np.float32), *warp.angles)[0]
        center = (float(moved[0]), float(moved[1]), float(moved[2]))
    return WarpGeometry(depth=depth, matte=matte, rigidity=rigidity, camera=geom.camera, pivot=geom.pivot,
                        keep=keep, occlusion_bias=geom.occlusion_bias, face_width=geom.face_width, face=face,
                        center=center, features=features)


def _carry_field(field: np.ndarray | None, local: np.ndarray, cover: np.ndarray,
                 roi: tuple[int, int, int, int]) -> np.ndarray | None:
    """A per-pixel source field as it lies in the turned view (0 where nothing covers)."""
    if field is None:
        return None
    x0, y0, x1, y1 = roi
    out = field.copy()
    moved = cv2.remap(field[y0:y1, x0:x1], local[..., 0], local[..., 1], cv2.INTER_LINEAR)
    out[y0:y1, x0:x1] = np.where(cover, moved, 0.0)
    return out


def forward_flow(geom: WarpGeometry, warp: Warp, *, depth_tolerance: float = 1.5) -> np.ndarray:
    """Reference → target pixel offsets (HxWx2 float32) at the working size; NaN where not visible.

    A person pixel is visible when its depth reaches the target's z-buffer where it lands (and that
    target pixel shows photo content, not a fill); a background pixel stays put unless the person
    now covers it.
    """
    h, w = geom.shape
    flow = np.zeros((h, w, 2), np.float32)
    if warp.identity:
        return flow
    x0, y0, x1, y1 = warp.roi
    rh, rw = y1 - y0, x1 - x0
    g = _grid(rh, rw)
    tx, ty, tz = warp.forward
    lx, ly = tx - x0, ty - y0
    rig = geom.rigidity[y0:y1, x0:x1]
    z_eff = tz + np.float32(geom.occlusion_bias) * rig
    f = np.dstack([lx - g[..., 0], ly - g[..., 1]]).astype(np.float32)
    rx = np.clip(np.rint(lx), 0, rw - 1).astype(np.int64)
    ry = np.clip(np.rint(ly), 0, rh - 1).astype(np.int64)
    inside = (tx >= -0.5) & (tx <= w - 0.5) & (ty >= -0.5) & (ty <= h - 0.5)
    inside &= (lx >= -0.5) & (lx <= rw - 0.5) & (ly >= -0.5) & (ly <= rh - 0.5)
    gzy, gzx = np.gradient(tz)
    tol = depth_tolerance + 1.5 * (np.abs(gzx) + np.abs(gzy))
    (txy, txx), (tyy, tyx) = np.gradient(lx), np.gradient(ly)
    facing = txx * tyy - txy * tyx > 0.02  # turned away (or crushed edge-on): hidden whatever the depth
    person_ok = facing & warp.rendered[ry, rx] & (z_eff >= warp.zbuf[ry, rx] - tol)
    is_person = _dilate(geom.matte > 0.01, 1)[y0:y1, x0:x1]
    visible = np.where(is_person, inside & person_ok, ~(warp.alpha > 0.5))
    f = np.where(is_person[..., None], f, 0.0)
    f[~visible] = np.nan
    flow[y0:y1, x0:x1] = f
    return flow
