"""The face's mirror map, and the shadowed half of a face borrowing its albedo from the lit half."""

from __future__ import annotations

import numpy as np
import pytest

from icportrait_studio.geometry.mirror_map import mirror_map
from icportrait_studio.geometry.topology import face_topology
from icportrait_studio.lighting import relight
from icportrait_studio.lighting.estimate import LUMA


def test_the_mirror_map_pairs_each_side_with_the_other(sample_rgb, sample_analysis) -> None:
    lm = sample_analysis.landmarks
    h, w = sample_rgb.shape[:2]
    mm = mirror_map(lm, (h, w))
    assert mm.valid.mean() > 0.02 and mm.eyes.any()  # the face is ~3 % of the frame
    # twice across the face lands back where it started (the mesh pairs are an involution)
    ys, xs = np.nonzero(mm.valid & ~mm.eyes)
    x1, y1 = mm.x[ys, xs], mm.y[ys, xs]
    xi, yi = np.clip(np.rint(x1).astype(int), 0, w - 1), np.clip(np.rint(y1).astype(int), 0, h - 1)
    back = mm.valid[yi, xi]
    err = np.hypot(mm.x[yi, xi][back] - xs[back], mm.y[yi, xi][back] - ys[back])
    assert back.mean() > 0.95 and float(np.median(err)) < 1.0
    # the nose's ridge maps onto itself, a cheek onto the other cheek
    nose = lm[4, :2]
    assert np.hypot(mm.x[int(nose[1]), int(nose[0])] - nose[0], mm.y[int(nose[1]), int(nose[0])] - nose[1]) < 2.0
    cheek, other = lm[50, :2], lm[280, :2]  # mediapipe's left and right cheek points
    m = np.array([mm.x[int(cheek[1]), int(cheek[0])], mm.y[int(cheek[1]), int(cheek[0])]])
    assert np.hypot(*(m - other)) < 2.0
    # an eye maps about the irises' centres: one iris centre onto the other's
    topo = face_topology()
    c, oc = lm[topo.left_iris, :2].mean(axis=0), lm[topo.right_iris, :2].mean(axis=0)
    cx, cy = round(float(c[0])), round(float(c[1]))
    assert mm.eyes[cy, cx]
    assert np.hypot(mm.x[cy, cx] - oc[0], mm.y[cy, cx] - oc[1]) < 1.5


@pytest.fixture(scope="module")
def half_dark(sample_rgb, sample_analysis):
    """The sample with the image-left half of its face in near-black shadow (1 % of its light)."""
    dark = sample_rgb.copy()
    nose_x = int(sample_analysis.landmarks[4, 0])
    dark[:, : nose_x - 4] *= 0.01
    return dark


def test_a_shadowed_half_borrows_the_lit_halfs_albedo(sample_rgb, sample_analysis, half_dark,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Relit from its dark side, the shadowed half-face used to get a smooth, flat albedo (a plastic
    half-face with a blank eye); it now borrows the lit half's, texture included, and comes out closer to
    the albedo the same photo shows when fully lit."""
    truth = relight.prepare(sample_rgb, sample_analysis)
    ctx = relight.prepare(half_dark, sample_analysis)
    with monkeypatch.context() as mp:
        mp.setattr(relight, "_borrow_from_mirror", lambda fill, *a, **k: fill)
        flat = relight.prepare(half_dark, sample_analysis)
    assert truth.size == ctx.size == flat.size and truth.box == ctx.box
    lm = sample_analysis.landmarks * (ctx.size[0] / sample_analysis.image_size[0])
    if ctx.box is not None:
        lm = lm - np.array([ctx.box[0], ctx.box[1], 0], np.float32)
    skin = relight._resize(sample_analysis.skin_mask.astype(np.uint8), ctx.size, relight.cv2.INTER_NEAREST)
    if ctx.box is not None:
        skin = skin[ctx.box[1]:ctx.box[3], ctx.box[0]:ctx.box[2]]
    shadowed = (skin > 0) & (ctx.reliability < 0.05)
    shadowed[:, int(lm[4, 0]) - 2:] = False
    assert shadowed.sum() > 200

    def lum(a: np.ndarray) -> np.ndarray:
        return a @ LUMA

    def texture(a: np.ndarray) -> float:
        return float(np.abs(lum(a) - relight.cv2.GaussianBlur(lum(a), (0, 0), 2.0))[shadowed].mean())

    # the fully lit photo's own albedo there: its pixels over its light, as the relight reads them
    own = relight._resize(sample_rgb, ctx.size)
    if ctx.box is not None:
        own = own[ctx.box[1]:ctx.box[3], ctx.box[0]:ctx.box[2]]
    albedo = own / np.maximum(truth.source_shading, 0.05)[..., None]
    err_mirror = float(np.abs(lum(ctx.albedo_fill) - lum(albedo))[shadowed].mean())
    err_flat = float(np.abs(lum(flat.albedo_fill) - lum(albedo))[shadowed].mean())
    assert err_mirror < 0.8 * err_flat
    assert texture(ctx.albedo_fill) > 2.0 * texture(flat.albedo_fill)
    assert texture(ctx.albedo_fill) > 0.5 * texture(albedo)


def test_a_photo_lit_from_behind_the_face_lends_no_albedo(sample_analysis, half_dark,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Lit from beside or behind the face's plane, the lit skin is a rim read at grazing incidence: the
    Yale faces lit from 85-130° lent albedo that made every relight worse, so nothing is borrowed."""
    from dataclasses import replace

    real = relight.estimate_source_light

    def from_behind(*args, **kwargs):  # type: ignore[no-untyped-def]
        source, visibility = real(*args, **kwargs)
        return replace(source, direction=(0.95, 0.0, -0.31)), visibility

    monkeypatch.setattr(relight, "estimate_source_light", from_behind)
    behind = relight.prepare(half_dark, sample_analysis)
    monkeypatch.setattr(relight, "_borrow_from_mirror", lambda fill, *a, **k: fill)
    flat = relight.prepare(half_dark, sample_analysis)
    assert np.array_equal(behind.albedo_fill, flat.albedo_fill)
