"""The eyes' catchlights follow the rig: the photo's own is taken out, each light gets one where it reflects."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest

from icportrait_studio.cli import add_rig_arguments, rig_from_args
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.lighting.catchlights import CORNEA_RATIO, find_eyes
from icportrait_studio.lighting.estimate import LUMA
from icportrait_studio.lighting.relight import prepare, relight_image


@pytest.fixture(scope="module")
def big(sample_rgb):
    """The sample at 3x with a clean painted eye in each iris (brown iris, black pupil, one white catchlight
    up and right of the pupil); at its own size the irises are ~4 px, too small to be touched."""
    rgb = np.clip(cv2.resize(sample_rgb, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC), 0, 1)
    analysis = analyze(rgb)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    spots = []
    for eye in find_eyes(analysis.landmarks):
        cx, cy = eye.center
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        rgb[d2 < (0.95 * eye.radius) ** 2] = (0.12, 0.06, 0.03)
        rgb[d2 < (0.45 * eye.radius) ** 2] = (0.01, 0.01, 0.01)
        sx, sy = cx + 0.35 * eye.radius, cy - 0.3 * eye.radius
        rgb[(xx - sx) ** 2 + (yy - sy) ** 2 < (0.15 * eye.radius) ** 2] = (0.9, 0.9, 0.9)
        spots.append((sx, sy))
    return rgb.astype(np.float32), analysis, prepare(rgb, analysis), spots


def _spot(img: np.ndarray, x: float, y: float, r: float = 1.5) -> float:
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    return float((img @ LUMA)[(xx - x) ** 2 + (yy - y) ** 2 <= r * r].max())


@pytest.mark.parametrize("scale", [1.0, 0.4])
def test_catchlights_move_to_where_the_new_light_reflects(big, scale: float) -> None:
    """At 0.4 the relight is a drag preview's smaller copy, where these irises are under MIN_IRIS_RADIUS:
    it must move the catchlights too (it showed the photo's own until the full render moved them)."""
    rgb, analysis, ctx, spots = big
    eyes = find_eyes(analysis.landmarks)
    assert len(eyes) == 2 and all(e.radius > 6 > e.radius * 0.4 for e in eyes)
    photo = rgb if scale == 1.0 else cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    reach, gone = (1.5, 1.5) if scale == 1.0 else (1.0, 2.0)  # a smaller copy blurs the old spot into its iris
    light = Light(azimuth=-50, elevation=20)
    moved, _ = relight_image(photo, ctx, LightRig(lights=(light,)), analysis)
    kept, _ = relight_image(photo, ctx, LightRig(lights=(light,), catchlights=False), analysis)
    hx, hy, hz = np.asarray(light.direction) + np.array([0.0, 0.0, 1.0])
    norm = float(np.sqrt(hx * hx + hy * hy + hz * hz))
    h, w = photo.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for eye, (sx, sy) in zip(eyes, spots, strict=True):
        cx, cy, r = eye.center[0] * scale, eye.center[1] * scale, eye.radius * scale
        iris = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.9 * r) ** 2
        median = float(np.median((kept @ LUMA)[iris]))
        assert _spot(kept, sx * scale, sy * scale, reach) > 3 * median  # kept: where the photo's light put it
        assert _spot(moved, sx * scale, sy * scale, reach) < gone * median  # moved: gone from there
        px, py = cx + CORNEA_RATIO * r * hx / norm, cy - CORNEA_RATIO * r * hy / norm
        assert px < cx - 0.3 * r  # a light from the image's left reflects left of the centre
        assert _spot(moved, px, py, reach) > 3 * median  # and there is one now


def test_a_light_behind_the_head_leaves_no_catchlight_and_small_eyes_are_left_alone(big, sample_rgb,
                                                                                     sample_analysis,
                                                                                     sample_context) -> None:
    rgb, analysis, ctx, spots = big
    light = Light(azimuth=160, elevation=10)
    out, _ = relight_image(rgb, ctx, LightRig(lights=(light,), ambient=0.3), analysis)
    kept, _ = relight_image(rgb, ctx, LightRig(lights=(light,), ambient=0.3, catchlights=False), analysis)
    changed = np.abs((out - kept) @ LUMA) > 1e-3
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for eye, (sx, sy) in zip(find_eyes(analysis.landmarks), spots, strict=True):
        near = (xx - sx) ** 2 + (yy - sy) ** 2 < (0.5 * eye.radius) ** 2
        mine = changed & ((xx - eye.center[0]) ** 2 + (yy - eye.center[1]) ** 2 < (2 * eye.radius) ** 2)
        assert mine.any() and (mine <= near).all()  # only the old catchlight changed: no new one
        assert float((out @ LUMA)[mine].mean()) < 0.5 * float((kept @ LUMA)[mine].mean())  # it went dark
    # the sample at its own size: irises of ~4 px, a catchlight of a pixel or two: the photo's is kept
    assert find_eyes(sample_analysis.landmarks) == []
    on, _ = relight_image(sample_rgb, sample_context, LightRig(lights=(Light(azimuth=50),)), sample_analysis)
    off, _ = relight_image(sample_rgb, sample_context, LightRig(lights=(Light(azimuth=50),), catchlights=False),
                           sample_analysis)
    assert np.array_equal(on, off)


def test_cli_keep_catchlights() -> None:
    p = argparse.ArgumentParser()
    add_rig_arguments(p)
    assert rig_from_args(p.parse_args(["--preset", "loop"])).catchlights
    assert not rig_from_args(p.parse_args(["--preset", "loop", "--keep-catchlights"])).catchlights
    assert not rig_from_args(p.parse_args(["--preset", "loop"])).keep_texture
    kept = rig_from_args(p.parse_args(["--preset", "loop", "--keep-texture"]))
    assert kept.keep_texture and LightRig.from_dict(kept.to_dict()) == kept


def test_a_turned_head_gets_the_rigs_catchlights_too(big) -> None:
    from icportrait_studio.core.request import EditRequest
    from icportrait_studio.core.view import ViewPose
    from icportrait_studio.pipeline.base import SourceImage
    from icportrait_studio.pipeline.physical import PhysicalBackend

    rgb, _analysis, _ctx, _spots = big
    backend = PhysicalBackend(identity_check=False)
    source = SourceImage("painted", rgb)
    light = Light(azimuth=-50, elevation=20)
    runs = {on: backend.run(EditRequest("painted", LightRig(lights=(light,), catchlights=on), view=ViewPose(15),
                                        quality="full"), source) for on in (True, False)}
    moved, kept = runs[True], runs[False]
    assert moved.landmarks is not None
    hx, hy, hz = np.asarray(light.direction) + np.array([0.0, 0.0, 1.0])
    norm = float(np.sqrt(hx * hx + hy * hy + hz * hz))
    h, w = moved.image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    for eye in find_eyes(moved.landmarks):  # the irises where the turn put them
        cx, cy = eye.center
        iris = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.9 * eye.radius) ** 2
        median = float(np.median((kept.image @ LUMA)[iris]))
        px, py = cx + CORNEA_RATIO * eye.radius * hx / norm, cy - CORNEA_RATIO * eye.radius * hy / norm
        assert _spot(moved.image, px, py) > 3 * median > 0
        inner = (xx - cx) ** 2 + (yy - cy) ** 2 < (0.6 * eye.radius) ** 2  # clear of the white of the eye
        kept_lum = np.where(inner, kept.image @ LUMA, -1.0)
        iy, ix = np.unravel_index(np.argmax(kept_lum), kept_lum.shape)  # the photo's own, carried by the turn
        assert kept_lum[iy, ix] > 3 * median
        assert float((moved.image @ LUMA)[iy, ix]) < 0.5 * float(kept_lum[iy, ix])


def test_the_cached_eye_work_gives_the_same_result(big) -> None:
    """The rig-independent work per eye is kept in the context's cache across a drag's rigs: the second
    and later rigs come out exactly as without the cache."""
    from icportrait_studio.lighting.catchlights import move_catchlights

    rgb, analysis, ctx, _spots = big
    for az in (-50, 30):
        rig = LightRig(lights=(Light(azimuth=az, elevation=20),))
        cached, _ = relight_image(rgb, ctx, rig, analysis)
        assert any(isinstance(k, tuple) and k[0] == "catchlights" for k in ctx.cache)
        plain, _ = relight_image(rgb, ctx, LightRig(lights=rig.lights, catchlights=False), analysis)
        fresh = move_catchlights(plain, rgb, analysis.landmarks, rig)
        assert np.array_equal(cached, fresh)


def test_a_big_soft_fill_leaves_a_faint_reflection(big) -> None:
    """A catchlight is as bright as the light's radiance: the loop preset's fill (a third of the key's
    power from a light 2.5 times as wide) had drawn a grey disc half the iris wide over the pupil."""
    rgb, analysis, ctx, _spots = big
    key = Light(azimuth=-50, elevation=20, size=0.2)
    fill = Light(azimuth=35, elevation=0, intensity=0.3, size=0.5)
    on, _ = relight_image(rgb, ctx, LightRig(lights=(key, fill)), analysis)
    off, _ = relight_image(rgb, ctx, LightRig(lights=(key, fill), catchlights=False), analysis)
    added = (on - off) @ LUMA
    for eye in find_eyes(analysis.landmarks):
        cx, cy = eye.center
        rise = []
        for light in (key, fill):
            hx, hy, hz = np.asarray(light.direction) + np.array([0.0, 0.0, 1.0])
            norm = float(np.sqrt(hx * hx + hy * hy + hz * hz))
            px, py = cx + CORNEA_RATIO * eye.radius * hx / norm, cy - CORNEA_RATIO * eye.radius * hy / norm
            rise.append(float(added[round(py), round(px)]))
        assert rise[0] > 0.3  # the key's: a bright spot
        assert 0.0 < rise[1] < 0.1 * rise[0]  # the fill's: there, but faint
