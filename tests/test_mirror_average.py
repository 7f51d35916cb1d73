"""A second look at the face in the mirrored photo, averaged in (geometry/mirror_average.py, mirror_index.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.geometry.mirror_index import MIRROR_INDEX
from icportrait_studio.imaging.io import load_image

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"


def _flipped(normals: np.ndarray) -> np.ndarray:
    out = normals[:, ::-1].copy()
    out[..., 0] *= -1.0
    return out


def _mirrored_back(landmarks: np.ndarray, width: int) -> np.ndarray:
    out = landmarks.copy()
    out[:, 0] = width - out[:, 0]
    return out[np.asarray(MIRROR_INDEX)]


def test_mirror_index_pairs_each_landmark_with_its_mirror_image() -> None:
    from mediapipe.python.solutions import face_mesh_connections as fmc

    p = np.asarray(MIRROR_INDEX)
    assert sorted(p.tolist()) == list(range(478))  # a permutation
    np.testing.assert_array_equal(p[p], np.arange(478))  # its own inverse
    assert 20 <= int((p == np.arange(478)).sum()) <= 40  # the midline maps onto itself

    def points(table) -> list[int]:
        return sorted({i for e in table for i in e})

    for left, right in ((fmc.FACEMESH_LEFT_EYE, fmc.FACEMESH_RIGHT_EYE),
                        (fmc.FACEMESH_LEFT_EYEBROW, fmc.FACEMESH_RIGHT_EYEBROW),
                        (fmc.FACEMESH_LEFT_IRIS, fmc.FACEMESH_RIGHT_IRIS)):
        assert sorted(p[points(left)].tolist()) == points(right)
    for own in (fmc.FACEMESH_LIPS, fmc.FACEMESH_FACE_OVAL, fmc.FACEMESH_NOSE):
        assert sorted(p[points(own)].tolist()) == points(own)
    edges = {tuple(sorted(e)) for e in fmc.FACEMESH_TESSELATION}
    kept = {tuple(sorted((int(p[a]), int(p[b])))) for a, b in edges} & edges
    assert len(kept) >= len(edges) - 6


def test_the_face_no_longer_depends_on_which_way_round_the_photo_is() -> None:
    """Analysing the photo or its mirror image takes the same two looks: averaged, the landmarks of the two
    analyses agree exactly (a single look's do not), and so do the shading normals drawn from them (up to
    the one-pixel shift an array flip makes against landmark coordinates)."""
    rgb = load_image(SAMPLE).rgb
    w = rgb.shape[1]
    a = analyze(rgb)
    b = analyze(np.ascontiguousarray(rgb[:, ::-1]))
    assert "mirror_look" in a.timings and a.landmarks is not None and b.landmarks is not None
    np.testing.assert_allclose(a.landmarks, _mirrored_back(b.landmarks, w), atol=1e-3)
    from icportrait_studio.geometry import facemesh
    from icportrait_studio.imaging.color import encode_from_linear

    img8 = encode_from_linear(rgb, 8)  # one look each way, as the detector alone sees them
    one = facemesh.detect_faces(img8)[0].landmarks
    other = _mirrored_back(facemesh.detect_faces(np.ascontiguousarray(img8[:, ::-1]))[0].landmarks, w)
    assert np.linalg.norm(one[:, :2] - other[:, :2], axis=1).mean() > 0.3  # single looks disagree
    face = (a.face_mask & b.face_mask[:, ::-1])[:, 1:]
    diff = np.linalg.norm(a.shading_normals[:, 1:] - _flipped(b.shading_normals)[:, :-1], axis=2)[face].mean()
    assert diff < 0.02
    # only the face's shading normals are softened, and they stay unit vectors
    np.testing.assert_allclose(a.shading_normals[~a.face_mask], a.normals[~a.face_mask], atol=1e-6)
    lengths = np.linalg.norm(a.shading_normals[a.person], axis=1)
    np.testing.assert_allclose(lengths, 1.0, atol=1e-4)


def test_carried_landmarks_take_no_mirror_look() -> None:
    """Landmarks carried by a re-posed result are exact for it; a detector's look at its mirror is not."""
    rgb = load_image(SAMPLE).rgb
    first = analyze(rgb)
    again = analyze(rgb, landmarks=first.landmarks)
    assert "mirror_look" not in again.timings and again.shading_normals is not None
    np.testing.assert_allclose(again.landmarks, first.landmarks, atol=1e-4)
    outside = ~again.face_mask
    np.testing.assert_allclose(again.shading_normals[outside], again.normals[outside], atol=1e-6)


def test_soften_normals_takes_out_triangle_kinks_and_leaves_the_rest() -> None:
    """A faceted hemisphere (normals constant per coarse cell, as a coarse mesh would shade it): softened,
    its normals are closer to the true sphere's; outside the face nothing changes; a tiny face is left alone."""
    from icportrait_studio.geometry.face_raster import soften_normals

    n = 200
    ys, xs = (np.mgrid[0:n, 0:n].astype(np.float32) - (n - 1) / 2) / 80.0
    inside = xs**2 + ys**2 < 0.9
    z = np.sqrt(np.clip(1 - xs**2 - ys**2, 0, None))
    true = np.dstack([xs, -ys, z]).astype(np.float32)
    true /= np.linalg.norm(true, axis=2, keepdims=True)
    cell = 8  # pixels: facets of a coarse tessellation
    fy, fx = (np.mgrid[0:n, 0:n] // cell) * cell + cell // 2
    faceted = true[fy.clip(0, n - 1), fx.clip(0, n - 1)]
    soft = soften_normals(faceted, inside, face_width=160.0)
    core = inside & (xs**2 + ys**2 < 0.6)

    def err(m: np.ndarray) -> float:
        return float(np.linalg.norm(m - true, axis=2)[core].mean())

    assert err(soft) < 0.7 * err(faceted)
    np.testing.assert_array_equal(soft[~inside], faceted[~inside])
    assert soften_normals(faceted, inside, face_width=10.0) is faceted  # σ under a third of a pixel


def test_looks_that_disagree_grossly_are_not_averaged() -> None:
    """A failed mirror look (here: the direct one displaced by a fifth of the face) must not drag the
    landmarks halfway to it; a look within the usual disagreement is averaged."""
    from icportrait_studio.geometry.mirror_average import averaged_landmarks

    rng = np.random.default_rng(0)
    direct = np.zeros((478, 3), np.float32)
    direct[:, 0] = rng.uniform(300, 500, 478)
    direct[:, 1] = rng.uniform(200, 450, 478)
    width = 800
    as_mirror = direct[np.argsort(np.asarray(MIRROR_INDEX))].copy()  # the same points, seen mirrored
    as_mirror[:, 0] = width - as_mirror[:, 0]
    np.testing.assert_allclose(averaged_landmarks(direct, as_mirror, width), direct, atol=1e-3)
    near = as_mirror.copy()
    near[:, 1] += 2.0  # 1 % of the face: averaged in
    np.testing.assert_allclose(averaged_landmarks(direct, near, width)[:, 1], direct[:, 1] + 1.0, atol=1e-3)
    far = as_mirror.copy()
    far[:, 1] += 40.0  # 20 % of the face: a failed look
    np.testing.assert_array_equal(averaged_landmarks(direct, far, width), direct)
