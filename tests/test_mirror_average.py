"""The face's shading normals averaged with a look at the mirrored photo (geometry/mirror_average.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.imaging.io import load_image

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"


def _flipped(normals: np.ndarray) -> np.ndarray:
    out = normals[:, ::-1].copy()
    out[..., 0] *= -1.0
    return out


def test_averaged_normals_no_longer_depend_on_which_way_round_the_photo_is() -> None:
    """Analysing the photo or its mirror image gives the same two looks; averaged, the shading normals of
    the two analyses agree (up to the one-pixel shift an array flip makes against landmark coordinates),
    where a single look's normals disagree by the detector's own error."""
    rgb = load_image(SAMPLE).rgb
    a = analyze(rgb)
    b = analyze(np.ascontiguousarray(rgb[:, ::-1]))
    assert a.shading_normals is not None and b.shading_normals is not None
    face = (a.face_mask & b.face_mask[:, ::-1])[:, 1:]
    single = np.linalg.norm(a.normals[:, 1:] - _flipped(b.normals)[:, :-1], axis=2)[face].mean()
    averaged = np.linalg.norm(a.shading_normals[:, 1:] - _flipped(b.shading_normals)[:, :-1], axis=2)[face].mean()
    assert single > 0.03  # the detector's looks really differ
    assert averaged < 0.3 * single
    # only the face changes, and the normals stay unit vectors
    np.testing.assert_allclose(a.shading_normals[~a.face_mask], a.normals[~a.face_mask], atol=1e-6)
    lengths = np.linalg.norm(a.shading_normals[a.person], axis=1)
    np.testing.assert_allclose(lengths, 1.0, atol=1e-4)


def test_carried_landmarks_take_no_mirror_look() -> None:
    """Landmarks carried by a re-posed result are exact for it; a detector's look at its mirror is not."""
    rgb = load_image(SAMPLE).rgb
    first = analyze(rgb)
    again = analyze(rgb, landmarks=first.landmarks)
    assert "mirror_look" not in again.timings and again.shading_normals is not None
    # its shading normals are its own, only softened (see test_soften_normals_*)
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
