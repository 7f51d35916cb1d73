"""Face analysis: everything the relighter needs to know about a photo, computed once and cached.

Runs at a working size (long side ``GEO_SIDE``) whatever the photo's size: geometry is smooth, and
the full-resolution detail comes from the photo itself when the shading is applied. A face small in
its frame (a full-length portrait, a wide banner) raises the working size until the face spans
``FACE_GEO_MIN`` pixels (up to ``GEO_SIDE_MAX``); the relight and the view change scale their own
working sizes by the same ``FaceAnalysis.detail``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import cv2
import numpy as np

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.completion import complete_surface
from icportrait_studio.geometry.face_looks import find_faces
from icportrait_studio.geometry.face_raster import face_raster, soften_normals
from icportrait_studio.geometry.face_search import search_small_faces
from icportrait_studio.geometry.hair_over_face import hair_over_face
from icportrait_studio.geometry.matte_edge import head_region, refine_matte
from icportrait_studio.geometry.mirror_average import averaged_landmarks, mirrored_face
from icportrait_studio.geometry.raster import fill_polygon
from icportrait_studio.geometry.topology import CHIN, FOREHEAD, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, face_topology
from icportrait_studio.imaging.color import encode_from_linear

GEO_SIDE = 512
GEO_SIDE_MAX = 2048
FACE_GEO_MIN = 72  # pixels across the face at the working size (a head-and-shoulders portrait: ~90)
DETECT_SIDE = 768


@dataclass
class FaceAnalysis:
    """Geometry of one portrait at the working size ``geo_size`` (w, h); landmarks in full-res pixels."""

    image_size: tuple[int, int]
    geo_size: tuple[int, int]
    has_face: bool
    faces_found: int
    landmarks: np.ndarray | None  # (478, 3) full-res pixels, z toward the camera on the x scale
    other_faces: list[tuple[float, float, float, float]]
    matte: np.ndarray  # float32 HxW soft person matte (geo size)
    person: np.ndarray  # bool HxW
    face_mask: np.ndarray  # bool HxW, mesh coverage
    skin_mask: np.ndarray  # bool HxW, face skin without eyes, brows, lips and the hair over it
    hair_mask: np.ndarray  # bool HxW, hair lying over the face mesh (a fringe): see ``hair_over_face``
    depth: np.ndarray  # float32 HxW, geo pixels toward the camera
    normals: np.ndarray  # float32 HxWx3 camera space
    pose: tuple[float, float, float]  # yaw, pitch, roll in degrees
    face_width: float  # geo pixels
    warnings: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    landmarks_carried: bool = False  # the landmarks came with the photo (an earlier edit's), not a detection
    # ``normals`` with the face's softened below the mesh's triangle size (``face_raster.soften_normals``),
    # for shading only (the view turns the surface as drawn); None: shade with ``normals``
    shading_normals: np.ndarray | None = None

    @property
    def geo_scale(self) -> float:
        return self.geo_size[0] / self.image_size[0]

    @property
    def detail(self) -> float:
        """How much larger than the default the working size is (1 for a usual portrait; > 1 where a small
        face raised it): the relight and the view change scale their working sizes by it."""
        return max(1.0, max(self.geo_size) / GEO_SIDE)

    def landmarks_geo(self) -> np.ndarray | None:
        return None if self.landmarks is None else self.landmarks * self.geo_scale

    def summary(self) -> dict:
        return {
            "image_size": list(self.image_size),
            "faces_found": self.faces_found,
            "has_face": self.has_face,
            "landmarks_carried": self.landmarks_carried,
            "pose": {"yaw": round(self.pose[0], 1), "pitch": round(self.pose[1], 1), "roll": round(self.pose[2], 1)},
            "warnings": list(self.warnings),
            "timings_ms": {k: round(v * 1000, 1) for k, v in self.timings.items()},
        }


def _geo_side_for_face(face: facemesh.DetectedFace, det_scale: float, image_size: tuple[int, int],
                       geo_long: int) -> int:
    """The working size's long side at which ``face`` (detection pixels) spans FACE_GEO_MIN pixels."""
    w, h = image_size
    face_full = (face.bbox[2] - face.bbox[0]) / det_scale
    at_geo = face_full * geo_long / max(w, h)
    if at_geo >= FACE_GEO_MIN or face_full <= 0:
        return geo_long
    return int(min(GEO_SIDE_MAX, max(w, h), np.ceil(geo_long * FACE_GEO_MIN / at_geo)))


SEGMENT_INPUT = 256  # the person segmenter's input size
HEAD_AT_SEGMENTER_MIN = 40  # pixels across the face at that input: smaller, the head is segmented alone


def _sharpen_head_matte(matte: np.ndarray, geo8: np.ndarray, lm: np.ndarray) -> np.ndarray:
    """``matte`` with the head re-segmented in a square around it when the face is small in its frame.

    The segmenter sees the whole image at 256²: a face a few percent of the frame wide is a dozen of its
    pixels, and the hair's outline comes out as a blob (a view change then turns the blob). A window of
    four face widths around the face, segmented alone, shows the head at a usable size; it is blended in
    with a feathered border so the whole-image matte still holds outside it.
    """
    gh, gw = matte.shape
    x0, y0, x1, y1 = float(lm[:, 0].min()), float(lm[:, 1].min()), float(lm[:, 0].max()), float(lm[:, 1].max())
    face = max(x1 - x0, y1 - y0)
    if face <= 0 or face * SEGMENT_INPUT / max(gw, gh) >= HEAD_AT_SEGMENTER_MIN:
        return matte
    half = 2.0 * face
    cx, cy = 0.5 * (x0 + x1), 0.5 * (y0 + y1) + 0.5 * face  # a little low: the neck and shoulders too
    bx0, by0 = max(0, int(cx - half)), max(0, int(cy - half))
    bx1, by1 = min(gw, int(np.ceil(cx + half))), min(gh, int(np.ceil(cy + half)))
    if bx1 - bx0 < 16 or by1 - by0 < 16:
        return matte
    head = facemesh.segment_person(np.ascontiguousarray(geo8[by0:by1, bx0:bx1]))
    # feather: 1 inside, 0 at a window edge that lies inside the image (an image edge needs no feather)
    ramp = max(2.0, 0.15 * half)
    yy, xx = np.mgrid[by0:by1, bx0:bx1].astype(np.float32)
    dist = np.full(head.shape, np.inf, np.float32)
    for edge, coord, inner in ((bx0, xx, bx0 > 0), (by0, yy, by0 > 0)):
        if inner:
            dist = np.minimum(dist, coord - edge)
    for edge, coord, inner in ((bx1, xx, bx1 < gw), (by1, yy, by1 < gh)):
        if inner:
            dist = np.minimum(dist, edge - 1 - coord)
    wgt = np.clip(dist / ramp, 0.0, 1.0)
    out = matte.copy()
    out[by0:by1, bx0:bx1] = wgt * head + (1.0 - wgt) * matte[by0:by1, bx0:bx1]
    return out


def _resize_to(img: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    h, w = img.shape[:2]
    s = min(1.0, side / max(h, w))
    if s >= 1.0:
        return img, 1.0
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA), size[0] / w


def estimate_pose(lm: np.ndarray) -> tuple[float, float, float]:
    """Head yaw (+ = face turned toward image right), pitch (+ = up), roll from the 3D landmarks."""
    p = lm.astype(np.float64).copy()
    p[:, 1] *= -1
    x_axis = p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]
    y_axis = p[FOREHEAD] - p[CHIN]
    x_axis /= np.linalg.norm(x_axis) + 1e-9
    z_axis = np.cross(x_axis, y_axis)
    z_axis /= np.linalg.norm(z_axis) + 1e-9
    y_axis = np.cross(z_axis, x_axis)
    yaw = math.degrees(math.atan2(z_axis[0], z_axis[2]))
    pitch = math.degrees(math.asin(max(-1.0, min(1.0, z_axis[1]))))
    roll = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    return yaw, pitch, roll


def _region_masks(lm: np.ndarray, shape: tuple[int, int], face_width: float) -> np.ndarray:
    """Eyes, brows and lips (dilated): excluded from the skin used to estimate the light."""
    topo = face_topology()
    m = np.zeros(shape, bool)
    for ring in (topo.left_eye, topo.right_eye, topo.lips_outer):
        m |= fill_polygon(shape, lm[ring])
    for brow in (topo.left_brow, topo.right_brow):
        pts = lm[brow, :2].astype(np.float32)
        hull = cv2.convexHull(pts)[:, 0, :]
        m |= fill_polygon(shape, hull)
    k = max(1, round(0.03 * face_width))
    return cv2.dilate(m.astype(np.uint8), np.ones((2 * k + 1, 2 * k + 1), np.uint8)).astype(bool)


def analyze(rgb_linear: np.ndarray, *, geo_side: int = GEO_SIDE, landmarks: np.ndarray | None = None
            ) -> FaceAnalysis:
    """Analyse a linear-RGB float32 photo. Never raises for content problems: it warns instead.

    ``landmarks`` (N×3, full-res pixels) replace the face detection: an earlier edit of this very image
    knew where the face is better than a detector reading a synthesised (re-posed) face can.
    """
    t0 = time.perf_counter()
    h, w = rgb_linear.shape[:2]
    # one pass over a big photo: the detection copy is made from it, the geometry copy from that
    det_lin, det_scale = _resize_to(rgb_linear, DETECT_SIDE)
    geo_lin, _ = _resize_to(det_lin, geo_side) if geo_side < DETECT_SIDE else _resize_to(rgb_linear, geo_side)
    gh, gw = geo_lin.shape[:2]
    scale = gw / w
    det8 = encode_from_linear(det_lin, 8)
    timings: dict[str, float] = {"prepare": time.perf_counter() - t0}

    t = time.perf_counter()
    geo8 = det8 if det8.shape[:2] == (gh, gw) else encode_from_linear(geo_lin, 8)
    matte = facemesh.segment_person(geo8)  # first: the detection checks a small face against the outline
    timings["matte"] = time.perf_counter() - t
    t = time.perf_counter()
    given, landmarks = landmarks, None  # ``landmarks`` is set below from the face used
    looked = False  # the faces come from a look at the whole detection image (a mirror look can follow)
    if given is not None and len(given) == 478:
        faces, padded = [facemesh.DetectedFace(np.asarray(given, np.float32) * np.float32(det_scale))], False
    else:
        look = find_faces(det8, matte)  # a face half in black shadow: also in a copy with the shadows lifted
        faces, padded = look.faces, look.padded
        looked = bool(faces)
        if not faces and float(matte.max()) > 0.5:
            # a person but no face: one too small for the whole-image look (a full-length portrait, a banner)
            found = search_small_faces(rgb_linear, person=matte > 0.5)
            faces = [facemesh.DetectedFace(f.landmarks * np.float32(det_scale)) for f in found]
    if faces and geo_side == GEO_SIDE:  # a face small in its frame: a larger working size (see the module doc)
        grown = _geo_side_for_face(faces[0], det_scale, (w, h), max(gw, gh))
        if grown > max(gw, gh):
            geo_lin, _ = _resize_to(rgb_linear, grown)
            gh, gw = geo_lin.shape[:2]
            scale = gw / w
            geo8 = encode_from_linear(geo_lin, 8)
            matte = facemesh.segment_person(geo8)  # the model sees the person larger too
        matte = _sharpen_head_matte(matte, geo8, faces[0].landmarks * np.float32(gw / det8.shape[1]))
    timings["face_mesh"] = time.perf_counter() - t
    warnings: list[str] = []

    t = time.perf_counter()
    other: list[tuple[float, float, float, float]] = []
    mirror: facemesh.DetectedFace | None = None
    if faces:
        lm_det = faces[0].landmarks
        if looked:
            t_m = time.perf_counter()
            mirror = look.mirror if look.mirror_looked else mirrored_face(look.image, matte, faces[0], padded=padded)
            if mirror is not None:
                lm_det = averaged_landmarks(lm_det, mirror.landmarks, det8.shape[1])
            timings["mirror_look"] = time.perf_counter() - t_m
        landmarks = lm_det / det_scale  # full-res pixels
        other = [tuple(v / det_scale for v in f.bbox) for f in faces[1:]]
        if other:
            warnings.append(f"{len(faces)} faces found: relighting the largest, the other {len(other)} are lit "
                            "as part of the scene")
        if padded:
            warnings.append("tight crop: the face runs off the image edge; geometry was extrapolated")
    else:
        warnings.append("no face found: using a rough geometry from the person's outline")

    if landmarks is not None:
        lm_geo = landmarks * scale
        raster = face_raster(lm_geo, (gh, gw))
        face, mesh, depth_f, normals_f = raster.face, raster.mesh, raster.depth, raster.normals
        face_width = max(8.0, float(lm_geo[:, 0].max() - lm_geo[:, 0].min()))
        t_r = time.perf_counter()
        matte = refine_matte(geo8, matte, face, face_width, head_region(landmarks, (gh, gw), scale))
        timings["matte_edge"] = time.perf_counter() - t_r
        pose = estimate_pose(landmarks)
        features = _region_masks(lm_geo, (gh, gw), face_width)
        hair = hair_over_face(geo8, mesh, features, lm_geo, face_width, matte > 0.5)
        skin = mesh & ~features & ~hair
    else:
        face = np.zeros((gh, gw), bool)
        depth_f = np.zeros((gh, gw), np.float32)
        normals_f = np.zeros((gh, gw, 3), np.float32)
        pose = (0.0, 0.0, 0.0)
        face_width = 0.0
        skin = face
        hair = np.zeros((gh, gw), bool)

    person = matte > 0.5
    if not person.any() and not face.any():
        # neither a face nor a person: assume a centred head-and-shoulders ellipse
        yy, xx = np.mgrid[0:gh, 0:gw]
        person = ((xx - gw / 2) / (0.35 * gw)) ** 2 + ((yy - gh * 0.55) / (0.45 * gh)) ** 2 <= 1.0
        warnings.append("no person found either: lighting a centred ellipse")
    if face_width == 0.0:
        cols = np.nonzero(person.any(axis=0))[0]
        face_width = float(cols.max() - cols.min() + 1) * 0.5 if len(cols) else gw * 0.3
        skin = person.copy()
    surf = complete_surface(person, face, depth_f, normals_f, face_width)
    shading_normals = None
    if landmarks is not None:
        shading_normals = soften_normals(surf.normals, face, face_width)
    matte = np.maximum(matte, face.astype(np.float32))
    timings["geometry"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t0
    return FaceAnalysis(
        image_size=(w, h), geo_size=(gw, gh), has_face=landmarks is not None, faces_found=len(faces),
        landmarks=landmarks, other_faces=other, matte=matte.astype(np.float32), person=surf.person,
        face_mask=face, skin_mask=skin, hair_mask=hair, depth=surf.depth, normals=surf.normals, pose=pose,
        face_width=face_width, warnings=warnings, timings=timings,
        landmarks_carried=given is not None and len(given) == 478, shading_normals=shading_normals,
    )
