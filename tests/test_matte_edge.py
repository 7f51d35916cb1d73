"""The person matte's edge snapped to the photo (geometry/matte_edge.py): the segmenter's overhang over
the background is not person; the face mesh's region stays solid."""

from __future__ import annotations

import numpy as np

from icportrait_studio.geometry.matte_edge import refine_matte

H = W = 200
YY, XX = np.mgrid[0:H, 0:W]
R = np.hypot(XX - 100, YY - 100)


def _photo() -> np.ndarray:
    """A skin-coloured disc (radius 50) with a little grain on a pale grey backdrop."""
    rng = np.random.default_rng(3)
    img = np.empty((H, W, 3), np.float32)
    img[:] = (0.80, 0.80, 0.82)
    img[R <= 50] = (0.78, 0.52, 0.40)
    img += rng.normal(0, 0.01, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def test_the_segmenters_overhang_is_carved_away() -> None:
    blob = np.clip((62.0 - R) / 6.0, 0.0, 1.0).astype(np.float32)  # soft, 9 px too wide
    face = R <= 40  # the face mesh's region: solid whatever its colours
    out = refine_matte(_photo(), blob, face, face_width=100.0, region=np.ones((H, W), bool))
    ring = (R >= 53) & (R <= 60)  # background inside the segmenter's blob
    assert float(blob[ring].mean()) > 0.5
    assert float(out[ring].max()) < 0.25
    assert float(out[R <= 48].min()) > 0.95  # the person stays solid


def test_outside_the_region_the_matte_is_left_alone() -> None:
    blob = np.clip((62.0 - R) / 6.0, 0.0, 1.0).astype(np.float32)
    region = np.zeros((H, W), bool)
    region[:, :100] = True  # only the left half is refined
    out = refine_matte(_photo(), blob, R <= 50, face_width=100.0, region=region)
    right = (R >= 54) & (R <= 60) & (XX > 110)
    np.testing.assert_allclose(out[right], blob[right], atol=0.05)  # only the final 0.6 px blur differs
    assert float(out[(R >= 54) & (R <= 60) & (XX < 90)].max()) < 0.25
