"""Faces small in their frame: a wide banner, a full-length portrait, a face too small to turn.

The whole-image face look shrinks the photo to its detector's input, so these faces were never found
(the photo was relit with the rough "no face" geometry), and the person segmenter squeezed a banner
six times over into its square input (the matte was garbage).
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.request import EditRequest
from icportrait_studio.core.view import ViewPose
from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.pipeline.base import SourceImage
from icportrait_studio.pipeline.physical import PhysicalBackend

GREY = np.float32(0.25)


def _pasted(sample_rgb: np.ndarray, canvas: tuple[int, int], side: int, at: tuple[int, int]) -> np.ndarray:
    """The sample scaled to ``side`` pixels and pasted at ``at`` (x, y) into a grey canvas (w, h)."""
    w, h = canvas
    out = np.full((h, w, 3), GREY, np.float32)
    x, y = at
    out[y:y + side, x:x + side] = cv2.resize(sample_rgb, (side, side), interpolation=cv2.INTER_AREA)
    return out


@pytest.fixture(scope="module")
def banner(sample_rgb):
    return _pasted(sample_rgb, (3000, 512), 512, (1200, 0))


@pytest.mark.slow
def test_face_in_a_wide_banner_is_found_at_a_usable_size(banner, sample_analysis) -> None:
    a = analyze(banner)
    assert a.has_face
    assert a.detail > 1.0  # the working size grew for the small face
    x = a.landmarks[:, 0]
    assert x.min() > 1200 and x.max() < 1712
    # the same landmarks as in the sample on its own, moved by the paste (to a few pixels)
    moved = sample_analysis.landmarks[:, :2] + np.float32([1200, 0])
    assert float(np.median(np.linalg.norm(a.landmarks[:, :2] - moved, axis=1))) < 4.0


@pytest.mark.slow
def test_a_wide_banner_is_segmented_in_square_windows(banner) -> None:
    """Squeezed into the segmenter's square input the person was unrecognisable: the matte covered the
    lower half of the whole banner, person or not."""
    a = analyze(banner)
    m = cv2.resize(a.matte, (3000, 512), interpolation=cv2.INTER_LINEAR)
    face = a.landmarks.astype(int)
    assert float(np.mean(m[face[:, 1].clip(0, 511), face[:, 0].clip(0, 2999)])) > 0.9
    assert float(m[:, :1000].mean()) < 0.05 and float(m[:, 1900:].mean()) < 0.05  # plain grey either side


@pytest.mark.slow
def test_full_length_portrait_is_found_and_turned(sample_rgb) -> None:
    tall = _pasted(sample_rgb, (2000, 3000), 600, (700, 400))
    backend = PhysicalBackend(identity_check=False)
    source = SourceImage("tall", tall)
    a = backend.analysis(source)
    assert a.has_face and a.face_width >= 40
    res = backend.run(EditRequest("tall", LightRig(lights=(Light(azimuth=-60, elevation=20),)),
                                  view=ViewPose(20), quality="preview"), source)
    assert not any("too small" in w for w in res.info["warnings"])
    assert res.info.get("view") is not None
    # the shading grows with the working size, but a preview's never beyond the preview it renders
    from icportrait_studio.pipeline.physical import SHADING_SIDE

    full_ctx = backend.context(source, a, SHADING_SIDE["full"])
    preview_ctx = backend.context(source, a, SHADING_SIDE["preview"], 512)
    assert max(full_ctx.size) > 2 * SHADING_SIDE["full"]
    assert max(preview_ctx.size) <= 512


@pytest.mark.slow
def test_a_full_length_portraits_shading_covers_the_person_only(sample_rgb) -> None:
    """Its shading maps keep the face's detail, ~1 MP over the whole frame, most of it backdrop: the
    context is worked out in the person's box (4× fewer pixels here) and relights exactly as the whole
    frame's, the backdrop too when the rig relights it (that one asks for the whole frame)."""
    from icportrait_studio.lighting.relight import prepare, relight_image

    tall = _pasted(sample_rgb, (2000, 3000), 600, (700, 400))
    a = analyze(tall)
    boxed, whole = prepare(tall, a), prepare(tall, a, boxed=False)
    assert boxed.box is not None and whole.box is None and boxed.size == whole.size
    x0, y0, x1, y1 = boxed.box
    assert (x1 - x0) * (y1 - y0) < 0.3 * boxed.size[0] * boxed.size[1]
    for background in (False, True):
        rig = LightRig(lights=(Light(azimuth=-50, elevation=20), Light(azimuth=60, kind="point", distance=1.5)),
                       relight_background=background)
        out_boxed, shading_boxed = relight_image(tall, boxed, rig, a)
        out_whole, shading_whole = relight_image(tall, whole, rig, a)
        assert shading_boxed.shape == shading_whole.shape
        np.testing.assert_allclose(out_boxed, out_whole, atol=1e-4)
    assert not np.allclose(out_boxed[:200], tall[:200])  # the backdrop was relit, far outside the box


def test_a_face_too_small_to_turn_is_left_with_a_clear_message(sample_rgb) -> None:
    small = cv2.resize(sample_rgb, (64, 64), interpolation=cv2.INTER_AREA)
    backend = PhysicalBackend(identity_check=False)
    source = SourceImage("small", small)
    rig = LightRig(lights=(Light(azimuth=40, elevation=10),))
    turned = backend.run(EditRequest("small", rig, view=ViewPose(25)), source)
    assert any("too small to turn" in w for w in turned.info["warnings"])
    still = backend.run(EditRequest("small", rig), source)
    np.testing.assert_array_equal(turned.image, still.image)  # relit, not turned


def test_a_usual_portrait_keeps_the_default_working_size(sample_rgb) -> None:
    big = cv2.resize(sample_rgb, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    a = analyze(big)
    assert a.geo_size == (512, 512) and a.detail == 1.0


def test_the_app_analyses_the_full_photo_and_previews_a_small_copy() -> None:
    """The app used to analyse a 768 px copy: a full-length portrait's face there is ~28 px, too small
    to turn. The analysis now gets the photo itself; previews still relight a ≤512 px copy."""
    from icportrait_studio.core.request import PREVIEW_MAX_SIDE
    from icportrait_studio.ui.work import make_proxies

    photo = np.zeros((3000, 2000, 3), np.float32)
    proxies = make_proxies(photo, None)
    assert proxies.analysis is None
    assert proxies.preview is not None and max(proxies.preview[0].shape[:2]) == PREVIEW_MAX_SIDE


def test_the_search_only_looks_where_the_person_is(monkeypatch) -> None:
    """A face is on a person: windows the person's matte does not reach are not shown to the detector
    (a banner with a person at one end is searched in a few windows, not all of them)."""
    from icportrait_studio.geometry import face_search, facemesh

    seen: list[tuple[int, int]] = []

    def fake_boxes(rgb8: np.ndarray) -> list:
        seen.append(rgb8.shape[:2])
        return []

    monkeypatch.setattr(facemesh, "detect_face_boxes", fake_boxes)
    photo = np.full((500, 3000, 3), 0.3, np.float32)
    person = np.zeros((50, 300), bool)
    person[10:50, 10:40] = True  # at the left end (a mask at a tenth of the photo's size)
    assert face_search.search_small_faces(photo, person=person) == []
    searched_with_person = len(seen)
    seen.clear()
    face_search.search_small_faces(photo)
    assert 0 < searched_with_person < len(seen) / 3


@pytest.mark.parametrize("shape", [(8, 8), (40, 600), (333, 777)])
def test_a_view_change_of_a_photo_without_a_face_is_a_relight_with_a_message(shape) -> None:
    """(A regression of this session's guard for small faces: a photo without a face raised instead.)"""
    img = np.random.default_rng(0).random((*shape, 3)).astype(np.float32)
    res = PhysicalBackend(identity_check=False).run(
        EditRequest("noface", LightRig(lights=(Light(azimuth=30, elevation=10),)), view=ViewPose(20)),
        SourceImage("noface", img))
    assert res.image.shape == img.shape
    assert any("the view was not changed" in w for w in res.info["warnings"])


def test_synth_skips_a_face_too_small_to_turn(tmp_path, sample_rgb) -> None:
    """The dataset's flow comes from the warp while its target comes from the backend, which relights a
    face too small to turn without turning it: such a pair would lie, so the photo is skipped."""
    from icportrait_studio.errors import InputError
    from icportrait_studio.imaging.io import save_image
    from icportrait_studio.synth.dataset import SynthConfig, synthesize

    photo = tmp_path / "small.png"
    save_image(photo, cv2.resize(sample_rgb, (64, 64), interpolation=cv2.INTER_AREA))
    logged: list[str] = []
    with pytest.raises(InputError, match="no samples"):
        synthesize([photo], tmp_path / "ds", SynthConfig(yaws=(20.0,), pitches=(0.0,)), log=logged.append)
    assert any("too small to turn" in line for line in logged)


@pytest.mark.slow
def test_a_group_of_small_faces_is_all_found_and_the_largest_relit(sample_rgb) -> None:
    """The search stopped at the first scale that found a face: in a group only one of three small faces
    was found (the others went unreported). One finer scale is now searched too."""
    group = np.full((1200, 3200, 3), GREY, np.float32)
    for i, side in enumerate((300, 360, 260)):
        group[400:400 + side, 300 + i * 1000:300 + i * 1000 + side] = cv2.resize(sample_rgb, (side, side),
                                                                                 interpolation=cv2.INTER_AREA)
    a = analyze(group)
    assert a.faces_found == 3 and len(a.other_faces) == 2
    assert 1300 < float(a.landmarks[:, 0].mean()) < 1660  # the middle, largest one
    assert any("3 faces found" in w for w in a.warnings)
