"""The background plate where a turned head uncovers its old place: it must meet the photo at the old outline."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from icportrait_studio.geometry import view_layers
from icportrait_studio.geometry.view_layers import make_layers


def _disc_on_a_lit_backdrop() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A disc "person" (120 px across, soft edge) on a backdrop lit brighter to the right, with grain and a
    bright halo hugging the outline (a sharpened photo's), which the fill's mirror does not reach."""
    rng = np.random.default_rng(7)
    h = w = 200
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - 100, yy - 100)
    grain = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5) - 0.5
    backdrop = 0.25 + 0.4 * xx / w + 0.3 * grain + 0.15 * ((r > 60.5) & (r < 63.5))
    matte = np.clip(60.5 - r, 0, 1).astype(np.float32)
    rgb = np.where(matte[..., None] > 0.5, np.float32([0.8, 0.5, 0.4]), np.dstack([backdrop] * 3))
    return rgb.clip(0, 1).astype(np.float32), matte, r


def _seam_step(plate: np.ndarray, rgb: np.ndarray, r: np.ndarray) -> float:
    """Largest difference, over 16 sectors around the disc, between the plate just inside the old outline and
    the photo just outside it (what a turn shows side by side)."""
    angle = np.arctan2(*np.mgrid[0:200, 0:200][::-1] - 100)
    sector = ((angle + np.pi) / (2 * np.pi) * 16).astype(int) % 16
    inside, outside = (r > 57) & (r < 60), (r > 61) & (r < 63)
    return max(abs(float(plate[inside & (sector == k)].mean() - rgb[outside & (sector == k)].mean()))
               for k in range(16))


def test_the_plate_meets_the_photo_at_the_old_outline(monkeypatch: pytest.MonkeyPatch) -> None:
    rgb, matte, r = _disc_on_a_lit_backdrop()
    plate = make_layers(rgb, matte, matte.copy(), work_side=100, face_width=80.0).plate
    with monkeypatch.context() as m:
        m.setattr(view_layers, "_meet_the_photo", lambda fill, *_a: fill)
        uncorrected = make_layers(rgb, matte, matte.copy(), work_side=100, face_width=80.0).plate
    assert _seam_step(uncorrected, rgb, r) > 0.08  # the mirror copies the backdrop from beyond the halo: a step
    assert _seam_step(plate, rgb, r) < 0.04  # shifted to meet the photo: no step along the old outline
    deep = r < 25
    assert np.abs(plate[deep] - uncorrected[deep]).max() < 0.01  # the shift fades: deep inside, the fill as it was
    np.testing.assert_allclose(plate[matte < view_layers.CLEAR], rgb[matte < view_layers.CLEAR], atol=1e-5)
