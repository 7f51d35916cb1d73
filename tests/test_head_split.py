"""The collar beside the jaw stays with the body when the head turns (``geometry/head_split.py``)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from icportrait_studio.geometry.head_split import body_beside_head
from icportrait_studio.geometry.topology import CHIN
from icportrait_studio.geometry.view_setup import _face_coords, rigidity_map, warp_geometry
from icportrait_studio.geometry.view_warp import backward_warp
from icportrait_studio.imaging.color import linear_to_srgb


@pytest.fixture(scope="module")
def sample_body(sample_rgb, sample_analysis) -> np.ndarray:
    body = body_beside_head(sample_rgb, sample_analysis)
    assert body is not None
    return body


def _beside_face(analysis, lo: float, hi: float) -> np.ndarray:
    """Pixels of the person in the head's region, outside the face, from ``lo`` to ``hi`` along the face's
    axis (0 at the pivot, 1 at the chin)."""
    gw, gh = analysis.geo_size
    s = gw / analysis.image_size[0]
    rig = rigidity_map(analysis.landmarks, (gh, gw), s)
    vert, _, _, _ = _face_coords(analysis.landmarks, (gh, gw), s)
    return (analysis.matte > 0.5) & (rig > 0.5) & ~analysis.face_mask & (vert > lo) & (vert < hi)


def test_collar_beside_the_jaw_is_body_and_the_hair_is_head(sample_rgb, sample_analysis, sample_body) -> None:
    """On the sample the black collar and the helmet's rim stand beside the jaw, the brown bob hangs
    beside the cheeks: the split gives the first to the body and leaves the second with the head."""
    small = cv2.resize(linear_to_srgb(sample_rgb), sample_analysis.geo_size, interpolation=cv2.INTER_AREA)
    black = _beside_face(sample_analysis, 0.5, 1.0) & (small.max(axis=2) < 0.12)
    brown = (small.max(axis=2) > 0.2) & (small[..., 0] - small[..., 2] > 0.12)  # warm brown, not the grey rim
    hair = _beside_face(sample_analysis, 0.1, 0.6) & brown  # below the eyes, where the split may reach
    assert black.sum() > 100 and hair.sum() > 30
    assert float((sample_body[black] > 0.5).mean()) > 0.8
    assert float(sample_body[hair].max()) < 0.5
    assert float(sample_body[sample_analysis.face_mask].max()) < 0.5


def test_a_tight_face_crop_has_no_body_to_split(sample_rgb, sample_analysis) -> None:
    """With no shoulders in view there is no colour to learn the body from: nothing changes."""
    from icportrait_studio.geometry.analysis import analyze

    h, w = sample_rgb.shape[:2]
    lm = sample_analysis.landmarks
    x0, x1 = int(lm[:, 0].min() - 20), int(lm[:, 0].max() + 20)
    y0, y1 = int(lm[:, 1].min() - 40), int(lm[CHIN, 1] + 5)
    crop = np.ascontiguousarray(sample_rgb[max(0, y0):min(h, y1), max(0, x0):min(w, x1)])
    analysis = analyze(crop)
    assert analysis.landmarks is not None
    assert body_beside_head(crop, analysis) is None


@pytest.mark.parametrize(("yaw", "pitch"), [(-30, -20), (30, 20)])
def test_turn_with_a_nod_leaves_the_collar_below(sample_rgb, sample_analysis, sample_body, yaw: float,
                                                 pitch: float) -> None:
    """At yaw -30° with pitch -20° a piece of the collar beside the jaw turned with the head and stood
    up beside the cheek as a black bar (at +30° / +20° a black flap under the cheek): the dark pixels
    between mouth and chin level, beside the face, grew by 38 % and 68 %. With the collar kept with the
    body they grow by at most a fifth (the turned face's own shading, the neck's shadow)."""
    lum = cv2.resize(linear_to_srgb(sample_rgb), sample_analysis.geo_size, interpolation=cv2.INTER_AREA).mean(axis=2)
    g = warp_geometry(sample_analysis, body=sample_body)
    warp = backward_warp(g, yaw, pitch)
    x0, y0, x1, y1 = warp.roi
    turned = lum.copy()
    turned[y0:y1, x0:x1] = cv2.remap(lum, warp.map[..., 0], warp.map[..., 1], cv2.INTER_LINEAR)
    lm = sample_analysis.landmarks * (g.shape[1] / sample_analysis.image_size[0])
    fw = g.face_width
    top = int(lm[:, 1].min() + 0.45 * (lm[CHIN, 1] - lm[:, 1].min()))
    region = np.zeros(g.shape, bool)
    region[top:int(lm[CHIN, 1]), max(0, int(lm[:, 0].min() - 0.5 * fw)):int(lm[:, 0].max() + 0.5 * fw)] = True
    before = int(((lum < 0.12) & region).sum())
    after = int(((turned < 0.12) & region).sum())
    assert after < 1.25 * before


def test_the_split_runs_once_per_photo(sample_rgb, monkeypatch) -> None:
    """The preview and the full quality each build their view geometry; the split is at the analysis'
    size, so both share one (it costs ~30 ms)."""
    import icportrait_studio.pipeline.physical as physical
    from icportrait_studio.core.lights import LightRig
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.pipeline.base import SourceImage

    calls = []

    def counted(rgb, analysis):
        calls.append(rgb.shape)
        return body_beside_head(rgb, analysis)

    monkeypatch.setattr(physical, "body_beside_head", counted)
    backend = physical.PhysicalBackend(identity_check=False)
    src = SourceImage("split-once", sample_rgb)
    rig = LightRig(lights=(), keep_original=1.0)
    for quality in ("preview", "full", "preview"):
        backend.run(EditRequest("split-once", rig, view=ViewPose(20, 5), quality=quality), src)
    assert len(calls) == 1
    backend.forget("split-once")
    backend.run(EditRequest("split-once", rig, view=ViewPose(20, 5), quality="full"), src)
    assert len(calls) == 2
