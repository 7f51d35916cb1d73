"""Re-posing: the warp against an analytic sphere, identity at yaw 0, hole filling, flows, the CLI, synth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.geometry.camera import PerspectiveCamera, rotate_rig, rotation
from icportrait_studio.geometry.view_fill import extend_nearest, reflect_fill
from icportrait_studio.geometry.view_layers import _smooth_into, composite, make_layers
from icportrait_studio.geometry.view_warp import (
    WarpGeometry,
    backward_warp,
    carry_geometry,
    forward_flow,
)

SIZE, RADIUS = 128, 44.0
CENTER = (SIZE - 1) / 2.0
BG = 0.1
WAVES = np.array([[0.31, 0.12, 0.05], [-0.08, 0.27, 0.14], [0.2, -0.22, 0.1]], np.float32)


def _texture(q: np.ndarray) -> np.ndarray:
    """A colour pattern fixed to the sphere's surface (q: ...x3 points in the sphere's own frame)."""
    return (0.5 + 0.25 * np.sin(q @ WAVES.T)).astype(np.float32)


def _render(yaw: float, pitch: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The sphere turned by (yaw, pitch), seen orthographically: image, matte, depth, source-visibility."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    x, y = xs - CENTER, CENTER - ys
    r2 = x * x + y * y
    inside = r2 < RADIUS ** 2
    z = np.sqrt(np.maximum(RADIUS ** 2 - r2, 0.0))
    p = np.dstack([x, y, z])
    q = p @ rotation(yaw, pitch).astype(np.float32)  # R^T p, row-vector form
    matte = np.clip(RADIUS - np.sqrt(r2) + 0.5, 0.0, 1.0).astype(np.float32)
    img = _texture(q) * matte[..., None] + BG * (1 - matte[..., None])
    return img.astype(np.float32), matte, np.where(inside, z, 0.0).astype(np.float32), q[..., 2]


def _sphere_geometry() -> tuple[WarpGeometry, np.ndarray]:
    img, matte, depth, _ = _render(0, 0)
    depth = extend_nearest(depth, matte > 0.5)
    geom = WarpGeometry(depth=depth, matte=matte, rigidity=np.ones_like(matte),
                        camera=PerspectiveCamera(1e6, CENTER, CENTER), pivot=(CENTER, CENTER, 0.0),
                        keep=matte, face_width=2 * RADIUS)
    return geom, img


def _repose(geom: WarpGeometry, img: np.ndarray, yaw: float, pitch: float):
    warp = backward_warp(geom, yaw, pitch)
    layers = make_layers(img, geom.matte, geom.keep_alpha)
    out, alpha = composite(warp, layers, original=img, cubic=False)
    return warp, out, alpha


def _disk(margin: float) -> np.ndarray:
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    return (xs - CENTER) ** 2 + (ys - CENTER) ** 2 < (RADIUS - margin) ** 2


@pytest.mark.parametrize(("yaw", "pitch"), [(30, 0), (-30, 0), (0, 20), (0, -20), (20, 15)])
def test_sphere_matches_analytic_rotation(yaw: float, pitch: float) -> None:
    geom, img = _sphere_geometry()
    warp, out, alpha = _repose(geom, img, yaw, pitch)
    truth, _, _, src_z = _render(yaw, pitch)
    seen = _disk(3) & (src_z > 0.3 * RADIUS) & ~warp.full("filled", False)
    err = np.abs(out - truth).mean(axis=2)[seen]
    assert seen.sum() > 0.5 * _disk(3).sum()
    assert err.mean() < 0.02, err.mean()
    assert np.percentile(err, 95) < 0.06
    # the silhouette of a sphere does not change: the alpha matches the analytic matte
    assert np.abs(alpha - geom.matte).mean() < 0.01


@pytest.mark.parametrize(("yaw", "pitch"), [(35, 0), (0, -25)])
def test_disoccluded_region_is_filled_with_texture(yaw: float, pitch: float) -> None:
    geom, img = _sphere_geometry()
    warp, out, alpha = _repose(geom, img, yaw, pitch)
    _, _, _, src_z = _render(yaw, pitch)
    lune = _disk(2) & (src_z < 0)  # what the photo never saw
    assert lune.sum() > 50
    assert np.isfinite(out).all() and np.isfinite(alpha).all()
    assert (alpha[_disk(2)] > 0.99).all()  # no holes: the person covers all of the disk
    assert warp.full("filled", False)[lune].mean() > 0.95
    assert np.abs(out[lune] - BG).mean() > 0.2  # filled from the sphere, not the background
    # texture, not a smear: the fill varies about as much as the visible surface next to it
    near = _disk(2) & ~lune & (src_z < 0.5 * RADIUS)
    assert out[lune].std(axis=0).mean() > 0.3 * out[near].std(axis=0).mean()


def test_yaw_zero_is_the_identity() -> None:
    geom, img = _sphere_geometry()
    warp, out, alpha = _repose(geom, img, 0.0, 0.0)
    assert warp.identity
    assert np.array_equal(out, img)
    assert np.array_equal(alpha, geom.matte)


@pytest.mark.parametrize(("yaw", "pitch"), [(30, 0), (0, -20)])
def test_turn_and_back_returns_to_the_input(yaw: float, pitch: float) -> None:
    geom, img = _sphere_geometry()
    warp, there, _ = _repose(geom, img, yaw, pitch)
    geom2 = carry_geometry(geom, warp)
    _, back, alpha = _repose(geom2, there, -yaw, -pitch)
    # what stayed in view both ways comes back (the far limb was hidden in between: synthesised)
    _, _, _, z_there = _render(-yaw, -pitch)  # z of the intermediate view's point at each input pixel
    both = _disk(3) & (z_there > 0.3 * RADIUS)
    assert np.abs(back - img).mean(axis=2)[both].mean() < 0.03
    assert np.abs(alpha - geom.matte).mean() < 0.01


def test_small_turn_keeps_detail() -> None:
    geom, img = _sphere_geometry()
    _, out, _ = _repose(geom, img, 1.0, 0.0)
    truth, _, _, _ = _render(1.0, 0.0)
    inner = _disk(3)
    assert np.abs(out - truth).mean(axis=2)[inner].mean() < 0.01


def test_forward_flow_matches_the_rotation_and_marks_hidden_points() -> None:
    geom, _ = _sphere_geometry()
    yaw = 30.0
    warp = backward_warp(geom, yaw, 0.0)
    flow = forward_flow(geom, warp)
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    p = np.dstack([xs - CENTER, CENTER - ys, geom.depth])
    moved = p @ rotation(yaw, 0).T.astype(np.float32)
    expect = np.dstack([moved[..., 0] + CENTER - xs, CENTER - moved[..., 1] - ys])
    front = _disk(3) & (moved[..., 2] > 0.3 * RADIUS)
    ok = np.isfinite(flow[..., 0]) & front
    assert ok.sum() > 0.95 * front.sum()
    assert np.abs(flow[ok] - expect[ok]).max() < 0.75
    hidden = _disk(1) & (moved[..., 2] < -0.1 * RADIUS)  # turned to the back
    assert hidden.any() and np.isnan(flow[hidden][:, 0]).all()
    background = ~_disk(-2) & (np.abs(xs - CENTER) > RADIUS + 4)
    assert np.all(flow[background] == 0.0)


def test_rotate_rig_turns_lights_with_the_head() -> None:
    from icportrait_studio.core.lights import Light, LightRig

    rig = LightRig(lights=(Light(azimuth=0, elevation=0), Light(azimuth=-40, elevation=20)))
    turned = rotate_rig(rig, rotation(30, 0))
    assert turned.lights[0].azimuth == pytest.approx(30.0, abs=1e-6)
    assert turned.lights[1].elevation == pytest.approx(20.0, abs=1e-6)
    back = rotate_rig(turned, rotation(30, 0).T)
    assert back.lights[1].azimuth == pytest.approx(-40.0, abs=1e-6)


# --------------------------------------------------------------------------- the backend on a real photo


def test_backend_view_identity_is_bit_exact(sample_rgb, sample_analysis) -> None:
    from icportrait_studio.core.lights import Light, LightRig
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.physical import PhysicalBackend

    be = PhysicalBackend(identity_check=False)
    src = SourceImage("s", sample_rgb)
    rig = LightRig(lights=(Light(azimuth=40, elevation=10),))
    plain = be.run(EditRequest("s", rig), src)
    same = be.run(EditRequest("s", rig, view=ViewPose(0.0, 0.0, "head")), src)
    assert np.array_equal(plain.image, same.image)
    keep = be.run(EditRequest("s", LightRig(keep_original=1.0), view=ViewPose(25, -10)), src)
    assert keep.info["view"]["yaw"] == 25 and 0 <= keep.info["view"]["filled_fraction"] < 0.3
    assert np.isfinite(keep.image).all() and keep.image.shape == sample_rgb.shape
    # far from the head nothing moves
    assert np.array_equal(keep.image[-40:, :], sample_rgb[-40:, :])
    cam = be.run(EditRequest("s", rig, view=ViewPose(30, 0, "camera"), quality="preview"), src)
    head = be.run(EditRequest("s", rig, view=ViewPose(30, 0, "head"), quality="preview"), src)
    assert np.abs(cam.image - head.image).mean() > 1e-3  # the anchor changes the light on the face


# --------------------------------------------------------------------------- CLI


def test_cli_rejects_out_of_range_angles(tmp_path: Path, sample_path: Path, capsys) -> None:
    from icportrait_studio.cli import main

    for args in (["--yaw", "60"], ["--pitch", "-40"], ["--yaw", "nan"]):
        code = main(["view", str(sample_path), "-o", str(tmp_path / "o.png"), *args])
        err = capsys.readouterr().err
        assert code == 2
        assert "error" in err and ("yaw" in err or "pitch" in err) and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()
    with pytest.raises(SystemExit) as exc:
        main(["view", str(sample_path), "-o", str(tmp_path / "o.png"), "--lights-follow", "sideways"])
    assert exc.value.code == 2


@pytest.mark.slow
def test_cli_view_writes_image_and_report(tmp_path: Path, sample_path: Path, capsys) -> None:
    from icportrait_studio.cli import main

    out, report = tmp_path / "turned.png", tmp_path / "r.json"
    code = main(["view", str(sample_path), "-o", str(out), "--yaw", "20", "--pitch", "-5", "--report", str(report)])
    printed = capsys.readouterr().out
    assert code == 0 and out.exists()
    data = json.loads(report.read_text())
    assert data["status"] == "ok" and data["view"]["yaw"] == 20.0
    assert data["identity_distance"] is not None and data["identity_distance"] < 0.5
    assert "identity distance" in printed and "yaw +20°" in printed and data["view_applied"] is True


def test_cli_view_of_a_photo_without_a_face_says_the_view_is_unchanged(tmp_path: Path, capsys) -> None:
    """The file is written (relit), a warning says why, and the result's own line no longer claims the turn."""
    from PIL import Image

    from icportrait_studio.cli import main

    src, out, report = tmp_path / "wall.png", tmp_path / "out.png", tmp_path / "r.json"
    Image.fromarray(np.full((96, 128, 3), 170, np.uint8)).save(src)
    code = main(["view", str(src), "-o", str(out), "--yaw", "20", "--report", str(report)])
    captured = capsys.readouterr()
    assert code == 0 and out.exists()
    assert "view unchanged" in captured.out and "yaw +20" not in captured.out
    assert "the view was not changed" in captured.err
    assert json.loads(report.read_text())["view_applied"] is False


@pytest.mark.slow
def test_synth_flows_map_reference_landmarks_onto_the_target(tmp_path: Path, sample_path: Path) -> None:
    from icportrait_studio.cli import main
    from icportrait_studio.geometry.analysis import analyze
    from icportrait_studio.geometry.topology import face_topology
    from icportrait_studio.imaging.io import load_image

    ds = tmp_path / "ds"
    code = main(["synth", str(sample_path), "-o", str(ds), "--yaw=-20,20", "--pitch", "0", "--rigs", "original,loop",
                 "--size", "384", "--no-identity", "-q"])
    assert code == 0
    manifest = json.loads((ds / "manifest.json").read_text())
    assert manifest["format"] == "icportrait-view-pairs" and len(manifest["samples"]) == 4
    oval = set(face_topology().face_oval)
    inner = [i for i in range(478) if i not in oval]
    for sample in manifest["samples"]:
        assert set(sample) >= {"reference", "target", "flow", "mask", "yaw", "pitch", "rig"}
        assert all((ds / sample[k]).exists() for k in ("reference", "target", "flow", "mask"))
    sample = next(s for s in manifest["samples"] if s["yaw"] == 20 and s["rig_name"] == "original")
    flow = np.load(ds / sample["flow"]).astype(np.float32)
    ref = load_image(ds / sample["reference"]).rgb
    assert flow.shape == (*ref.shape[:2], 2)
    assert 0 < np.isnan(flow[..., 0]).mean() < 0.2
    lm_ref = analyze(ref).landmarks
    lm_tgt = analyze(load_image(ds / sample["target"]).rgb).landmarks
    xy = np.rint(lm_ref[inner, :2]).astype(int)
    moved = lm_ref[inner, :2] + flow[xy[:, 1], xy[:, 0]]
    ok = np.isfinite(moved[:, 0])
    assert ok.mean() > 0.8
    iod = np.linalg.norm(lm_ref[468, :2] - lm_ref[473, :2])
    err = np.linalg.norm(moved[ok] - lm_tgt[inner][ok, :2], axis=1) / iod
    still = np.linalg.norm(lm_ref[inner][ok, :2] - lm_tgt[inner][ok, :2], axis=1) / iod
    assert err.mean() < 0.05 and err.mean() < 0.5 * still.mean()


def test_reflect_fill_smoothing_keeps_a_ragged_mirror_in_one_piece() -> None:
    # a hole beside a ragged (saw-tooth) edge: the raw mirror jumps between foot points, the smoothed
    # one changes gradually from row to row
    h, w = 64, 64
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    values = np.dstack([xs, ys])
    edge = 32 + 3 * ((np.arange(h) // 4) % 2)
    good = xs < edge[:, None]
    holes = (xs >= edge[:, None]) & (xs < 48)
    raw, _ = reflect_fill(values, good, holes)
    smooth, _ = reflect_fill(values, good, holes, 3.0)
    assert np.all(good[smooth[holes][:, 1].astype(int), smooth[holes][:, 0].astype(int)])
    rows = slice(8, 56)
    jump = lambda m: np.abs(np.diff(m[rows, 40, 1])).max()  # noqa: E731
    assert jump(smooth) < jump(raw)


def test_smooth_fill_keeps_fine_grain_but_not_features() -> None:
    rng = np.random.default_rng(0)
    img = np.full((48, 48, 3), 0.5, np.float32) + rng.normal(0, 0.01, (48, 48, 3)).astype(np.float32)
    img[20:28, 20:28] = 0.0  # a feature a mirror must not copy
    deep = np.zeros((48, 48), np.float32)
    deep[12:36, 12:36] = 1.0
    out = _smooth_into(img, deep, 1.2)
    assert out[20:28, 20:28].mean() > 0.4  # the feature is gone
    assert out[14:18, 30:34].std() > 0.004  # the grain is not


def test_smooth_fill_continues_the_person_not_the_background() -> None:
    """A cheek turning into view is a hole bordered by the person (skin, and hair above) on some sides
    and the pale background on another: the membrane must continue the person."""
    skin_c, hair_c, bg_c = np.float32([0.8, 0.6, 0.5]), np.float32([0.2, 0.1, 0.05]), np.float32([0.9, 0.9, 0.9])
    img = np.empty((64, 64, 3), np.float32)
    img[:] = bg_c
    img[:, :24] = skin_c
    img[:16, 24:] = hair_c
    deep = np.zeros((64, 64), np.float32)
    deep[16:64, 24:44] = 1.0
    person = np.zeros((64, 64), np.float32)
    person[:, :24] = 1.0
    person[:16, 24:] = 1.0
    far_side = (slice(40, 60), slice(36, 42))  # the middle of the hole, beside the background
    filled = _smooth_into(img, deep, 0.0, person)[far_side].mean(axis=(0, 1))
    anything = _smooth_into(img, deep, 0.0)[far_side].mean(axis=(0, 1))
    assert np.abs(filled - skin_c).max() < 0.15  # still the cheek's tone
    assert np.abs(filled - bg_c).min() > 0.2  # nowhere near the background
    assert np.abs(anything - bg_c).max() < 0.1  # what it did before: faded into the background


@pytest.mark.parametrize("yaw", [-30])
def test_cheek_turning_into_view_is_filled_with_skin(sample_rgb, sample_analysis, sample_geometry, yaw: float) -> None:
    """On the sample at −30° the cheek turning into view is a wide hole below the hair; its smooth fill
    used to be pulled from the pale background beside it as much as from the cheek and hair."""

    g = sample_geometry
    warp = backward_warp(g, yaw, 0)
    layers = make_layers(sample_rgb, g.matte, g.keep_alpha)
    out, _ = composite(warp, layers, original=sample_rgb)
    deep = warp.full("deep", 0.0) > 0.9
    assert deep.sum() > 100
    cheek_box = np.zeros_like(deep)
    ys, xs = np.nonzero(deep)
    cheek_box[ys.min():ys.max() + 1, max(0, xs.min() - 25):xs.min()] = True  # the cheek beside the hole
    skin = cheek_box & ~deep & (warp.full("alpha", 0.0) > 0.9)
    bg_box = np.zeros_like(deep)
    bg_box[ys.min():ys.max() + 1, xs.max() + 1:xs.max() + 26] = True  # the background beside it
    bg_box &= warp.full("alpha", 0.0) < 0.05
    filled, cheek, bg = out[deep].mean(axis=0), out[skin].mean(axis=0), out[bg_box].mean(axis=0)
    assert bg_box.sum() > 100
    # linear RGB: the cheek's tone (pulled toward the hair above it), far from the pale background
    assert np.linalg.norm(filled - cheek) < 0.25 * np.linalg.norm(bg - cheek)  # 0.38 when it was mixed in


def test_torn_off_crumbs_are_dropped_and_real_pieces_kept() -> None:
    from icportrait_studio.geometry.view_splat import _drop_islands

    mask = np.zeros((100, 100), np.uint8)
    mask[10:70, 10:60] = 1  # the person
    mask[80:84, 80:84] = 1  # a 16 px crumb
    mask[5:30, 75:95] = 1  # a 500 px piece (a raised hand)
    out = _drop_islands(mask, 100.0)
    assert out[82, 82] == 0 and out[40, 30] == 1 and out[15, 85] == 1
    assert out.sum() == 60 * 50 + 25 * 20
    alone = np.zeros((20, 20), np.uint8)
    alone[2:5, 2:5] = 1  # only a small piece: it is the person, kept
    assert _drop_islands(alone, 100.0).sum() == 9


def test_fill_never_mirrors_an_eye_brow_or_lip() -> None:
    """A mirrored fill that reaches a feature would paint a second one (a ghost eye corner at a tight
    crop's edge): fill pixels whose mirror lands on a feature take the smooth fill at any depth."""
    from dataclasses import replace

    geom, _ = _sphere_geometry()
    plain = backward_warp(geom, 35, 0)
    fill = plain.full("filled", False)
    near = fill & (plain.full("deep", 0.0) < 0.05)  # mirrored texture close to the boundary
    assert near.sum() > 30
    marked = backward_warp(replace(geom, features=geom.matte.copy()), 35, 0)
    assert (marked.full("deep", 0.0)[near] > 0.95).all()
    assert np.array_equal(marked.full("filled", False), fill)  # the same pixels are synthesised


def test_feature_mask_covers_eyes_brows_and_lips_not_cheeks(sample_analysis) -> None:
    from icportrait_studio.geometry.topology import LEFT_EYE_CENTER_RING, RIGHT_EYE_CENTER_RING
    from icportrait_studio.geometry.view_setup import feature_mask

    lm = sample_analysis.landmarks
    w, h = sample_analysis.image_size
    fw = float(np.ptp(lm[:, 0]))
    mask = feature_mask(lm, (h, w), 1.0, fw)
    at = lambda i: mask[int(np.rint(lm[i, 1])), int(np.rint(lm[i, 0]))]  # noqa: E731
    assert at(LEFT_EYE_CENTER_RING) == 1.0 and at(RIGHT_EYE_CENTER_RING) == 1.0
    assert at(13) == 1.0 and at(105) == 1.0 and at(334) == 1.0  # inner lip, both brows
    assert at(205) == 0.0 and at(425) == 0.0  # mid-cheeks


@pytest.mark.parametrize(("yaw", "pitch"), [(30, 0), (-25, 0), (0, 20), (0, -20), (15, 10)])
def test_pivot_turns_with_the_head(sample_analysis, yaw: float, pitch: float) -> None:
    """Computed again on the turned landmarks, the pivot is the same point: two analyses (a turn, then
    its inverse from the written file) share one centre of rotation."""
    from icportrait_studio.geometry.camera import camera_for, head_pivot
    from icportrait_studio.geometry.view_setup import warp_geometry
    from icportrait_studio.geometry.view_warp import transform_points

    a = sample_analysis
    g = warp_geometry(a)  # working size: the analysis' geometry size
    to_work = g.shape[1] / a.image_size[0]
    moved = transform_points(g, a.landmarks * np.float32(to_work), yaw, pitch) / np.float32(to_work)
    cam = camera_for(a.landmarks, a.image_size)
    again = np.array(head_pivot(moved, cam))
    assert np.abs(again - np.array(head_pivot(a.landmarks, cam))).max() < 0.5  # pixels of the photo


@pytest.mark.parametrize("yaw", [30, -30])
def test_turned_face_analysed_again_finds_the_carried_eye_depth(sample_rgb, sample_analysis, yaw: float) -> None:
    """A file written by a turn carries its landmarks; analysing it again must rebuild the geometry the
    turn carried, the eyes included (the mesh leaves them open: the far side of a turned face showed
    through the far eye and a blur of its rim weighed it differently, 4 px off on the sample)."""
    from icportrait_studio.geometry.analysis import analyze
    from icportrait_studio.geometry.raster import fill_polygon
    from icportrait_studio.geometry.topology import face_topology
    from icportrait_studio.geometry.view_setup import warp_geometry
    from icportrait_studio.geometry.view_warp import transform_points

    a = sample_analysis
    g = warp_geometry(a)
    assert g.shape == a.depth.shape and a.geo_size == a.image_size  # the sample is analysed at full size
    warp = backward_warp(g, yaw, 0)
    there, _ = composite(warp, make_layers(sample_rgb, g.matte, g.keep_alpha), original=sample_rgb)
    carried = carry_geometry(g, warp)
    moved = transform_points(g, a.landmarks.astype(np.float32), yaw, 0)
    again = analyze(there, landmarks=moved)
    topo = face_topology()
    for ring in (topo.left_eye, topo.right_eye):
        eye = fill_polygon(again.depth.shape, moved[ring])
        assert eye.sum() > 50
        assert np.abs(again.depth - carried.depth)[eye].mean() < 1.0  # pixels (face ≈ 90 px wide)


@pytest.mark.parametrize("yaw", [30, -30])
def test_far_side_outline_follows_the_receding_head(sample_rgb, sample_analysis, sample_geometry, yaw: float) -> None:
    """On the side the face turns toward, the head's rounded edge rotates out of sight inside the outline
    moved with the head's centre; that band was synthesised from the face as ghostly hair (about as
    much fill as on the side turning into view). Now it is left to the background; the near side, where
    the back of the head turns into view, is still filled."""

    g = sample_geometry
    warp = backward_warp(g, yaw, 0)
    filled = warp.full("filled", False)
    right = np.broadcast_to(np.arange(g.shape[1])[None, :] > g.center[0], g.shape)
    far, near = (right, ~right) if yaw > 0 else (~right, right)
    assert filled[near].sum() > 1000
    assert filled[far].sum() < 0.5 * filled[near].sum()


@pytest.mark.parametrize(("yaw", "pitch"), [(30, 0), (0, 20)])
def test_no_torn_off_piece_floats_beside_the_head(sample_rgb, sample_analysis, sample_geometry, yaw: float,
                                                  pitch: float) -> None:
    """A piece of the helmet's rim beside the jaw turned with the head and floated above the rim (joined
    to the head by its faint edge only, so the crumb filter kept it): now dropped with its fringe."""
    import cv2

    g = sample_geometry
    alpha = backward_warp(g, yaw, pitch).alpha
    _, _, stats, _ = cv2.connectedComponentsWithStats((alpha > 0.5).astype(np.uint8), connectivity=8)
    areas = sorted(stats[1:, cv2.CC_STAT_AREA].tolist(), reverse=True)
    assert sum(areas[1:]) < 8  # nothing beside the person but the odd pixel


@pytest.mark.parametrize("yaw", [30, -30])
def test_far_side_hair_stays_beside_the_turning_face(sample_rgb, sample_analysis, sample_geometry, yaw: float) -> None:
    """A round head's outline hardly moves when it turns; the hair inflated from the matte used to sit
    far behind the turning axis at the outline, so the far side's bob swung in behind the cheek (the
    outline receded by 0.15-0.23 face widths at eye height on the sample) and ended in a vertical cut."""

    g = sample_geometry
    turned = backward_warp(g, yaw, 0).person_alpha(g.matte) > 0.5
    src = g.matte > 0.5
    receded = []
    for row in (int(g.pivot[1]) + k for k in (-20, 0, 20)):
        xs_s, xs_t = np.nonzero(src[row])[0], np.nonzero(turned[row])[0]
        receded.append(xs_t.min() - xs_s.min() if yaw < 0 else xs_s.max() - xs_t.max())
    assert float(np.mean(receded)) < 0.12 * g.face_width


@pytest.mark.parametrize(("yaw", "pitch"), [(30, 0), (-30, 0), (0, -20)])
def test_no_background_specks_inside_the_turned_person(sample_rgb, sample_analysis, sample_geometry, yaw: float,
                                                       pitch: float) -> None:
    """A lone splat inside a filled region (the collar at +30°) was dropped as a crumb and then kept as
    "rendered", so the background plate showed through as bright specks: a see-through pixel or two
    ringed by solid person is now filled like the region around it."""
    import cv2

    g = sample_geometry
    alpha = backward_warp(g, yaw, pitch).person_alpha(g.matte)
    _, labels, stats, _ = cv2.connectedComponentsWithStats((alpha < 0.1).astype(np.uint8), connectivity=4)
    specks = 0
    for i in np.nonzero(stats[1:, cv2.CC_STAT_AREA] <= 4)[0] + 1:
        piece = (labels == i).astype(np.uint8)
        ring = cv2.dilate(piece, np.ones((3, 3), np.uint8)).astype(bool) & ~piece.astype(bool)
        specks += int(alpha[ring].min() > 0.5)
    assert specks == 0


def _fake_warp(mp: np.ndarray, rendered: np.ndarray, filled: np.ndarray):
    from icportrait_studio.geometry.view_warp import Warp

    h, w = rendered.shape
    z = np.zeros((h, w), np.float32)
    return Warp(shape=(h, w), roi=(0, 0, w, h), map=mp, rendered=rendered, filled=filled, alpha=z + 1, zbuf=z,
                forward=(z, z, z))


def test_occlusion_seams_are_softened_and_nothing_else() -> None:
    """Where one surface passes in front of another the backward map jumps, and the two sides' pixels met
    along a stair-stepped mask edge (a dotted dark line along the far side of a turned nose): a blur of
    about a pixel now runs along that seam, and pixels away from it keep their values."""
    from icportrait_studio.geometry.view_fill import _grid
    from icportrait_studio.geometry.view_layers import _occlusion_edges, _soften_seams

    h, w = 40, 60
    g = _grid(h, w)
    mp = g.copy()
    edge = 30 + (np.arange(h) // 4)[:, None]  # a shallow staircase: one pixel every four rows
    right = np.arange(w)[None, :] >= edge
    mp[..., 0] = np.where(right, g[..., 0] + 12.0, g[..., 0])  # the right side shows the photo 12 px away
    cover = np.ones((h, w), bool)
    seam = _occlusion_edges(mp, cover).astype(bool)
    assert seam.any() and np.all(seam.sum(axis=1) == 2)  # one pixel on each side of the jump, every row
    rng = np.random.default_rng(0)
    img = np.where(right[..., None], 0.8, 0.2).astype(np.float32) + rng.normal(0, 0.01, (h, w, 3)).astype(np.float32)
    out = _soften_seams(img.copy(), _fake_warp(mp, cover, np.zeros((h, w), bool)), g, 1.0)
    step_before = np.abs(np.diff(img[..., 0], axis=1)).max()
    step_after = np.abs(np.diff(out[..., 0], axis=1)).max()
    assert step_after < 0.6 * step_before
    far = np.abs(np.arange(w)[None, :] - edge) > 6
    assert np.allclose(out[far], img[far], atol=1e-4)


def test_turned_alpha_edge_is_antialiased() -> None:
    """Where the turned person ends, alpha fell from 1 to 0 between one pixel and the next along a mask's
    stair-stepped edge (jagged hair against the background on the far side): it now ramps over the edge
    band, and the inside keeps its value."""
    from icportrait_studio.geometry.view_splat import _antialiased

    h, w = 40, 60
    cover = np.arange(w)[None, :] < 30 + (np.arange(h) // 4)[:, None]
    alpha = cover.astype(np.float32)
    out = _antialiased(alpha, cover)
    assert np.abs(np.diff(out, axis=1)).max() < 0.75
    assert np.any((out > 0.05) & (out < 0.95))
    inside = np.broadcast_to(np.arange(w)[None, :] < 25, (h, w))
    assert np.array_equal(out[inside], alpha[inside])


def test_background_plate_continues_the_backdrop_texture_beside_the_outline() -> None:
    """What a turn uncovers beside the head shows the backdrop's own grain, not a flat membrane band."""
    import cv2

    rng = np.random.default_rng(5)
    h = w = 200
    grain = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 1.5)
    backdrop = np.dstack([0.2 + 2.0 * (grain - 0.5)] * 3).clip(0, 1).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    r = np.hypot(xx - 100, yy - 100)
    matte = np.clip(60.5 - r, 0, 1).astype(np.float32)  # a disc "person", 120 px across
    rgb = np.where(matte[..., None] > 0.5, np.float32([0.8, 0.5, 0.4]), backdrop).astype(np.float32)
    keep = matte.copy()
    band = (r > 48) & (r < 58)  # just inside the old outline: what a turn uncovers first

    def high_pass_std(img: np.ndarray) -> float:
        g = img.mean(axis=2)
        return float((g - cv2.GaussianBlur(g, (0, 0), 3))[band].std())

    textured = make_layers(rgb, matte, keep, work_side=100, face_width=80.0).plate
    flat = make_layers(rgb, matte, keep, work_side=100).plate
    reference = float((backdrop.mean(axis=2) - cv2.GaussianBlur(backdrop.mean(axis=2), (0, 0), 3))[r > 65].std())
    assert high_pass_std(textured) > 0.5 * reference  # the backdrop's grain carries into the band
    assert high_pass_std(flat) < 0.25 * reference  # (the membrane alone is flat there)
    assert np.abs(textured[band].mean(axis=0) - backdrop[r > 65].mean(axis=0)).max() < 0.05  # no person colour
    np.testing.assert_allclose(textured[r > 70], rgb[r > 70], atol=1e-4)  # the backdrop itself untouched


def test_near_side_notch_closes_with_the_turn_far_side_and_below_chin_stay() -> None:
    """The notch between a bob of hair and the jaw on the side turning into view becomes head (filled
    with the head's texture), in proportion to the turn; the far side and the neck are left alone."""
    from icportrait_studio.geometry.view_warp import _near_side_outline

    geom, _ = _sphere_geometry()
    ys, xs = np.mgrid[0:SIZE, 0:SIZE]
    keep = _disk(0).astype(np.float32)
    notch_rows = (ys > CENTER - 6) & (ys < CENTER + 6)
    left = notch_rows & (xs < CENTER - RADIUS + 14) & _disk(0)  # 14 px deep, 12 px tall: a notch in the outline
    right = notch_rows & (xs > CENTER + RADIUS - 14) & _disk(0)
    low = (ys > CENTER + 30) & (np.abs(xs - CENTER) > RADIUS - 30) & (np.abs(xs - CENTER) < RADIUS - 16)
    keep[left | right | low] = 0.0
    face = ((np.abs(xs - CENTER) < 25) & (ys > CENTER - 30) & (ys < CENTER + 20)).astype(np.float32)
    head = WarpGeometry(depth=geom.depth, matte=keep, rigidity=geom.rigidity, camera=geom.camera, pivot=geom.pivot,
                        keep=keep, face_width=geom.face_width, face=face, center=(CENTER, CENTER, 0.0))
    turned = _near_side_outline(head, keep, 30.0)  # +yaw: the face turns to the image's right
    assert turned[left].mean() > 0.9  # the image-left notch turned into view: closed
    assert turned[right].max() == 0.0  # the far side's notch is not invented
    assert turned[low].max() < 0.05  # below the chin (neck, shoulders) stays as it was
    np.testing.assert_array_equal(turned[keep > 0], keep[keep > 0])  # never removes anything
    mirrored = _near_side_outline(head, keep, -30.0)
    assert mirrored[right].mean() > 0.9 and mirrored[left].max() == 0.0
    slight = _near_side_outline(head, keep, 3.0)
    assert slight[left].mean() < 0.3  # a small turn shows a sliver, not the whole side
    assert _near_side_outline(geom, keep, 30.0) is keep  # no face, no centre (the sphere): unchanged
