"""A face half in black shadow: looked for in copies with the shadows lifted, the better-agreeing look kept."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.geometry import face_looks, facemesh
from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.geometry.face_looks import (
    SHADOW_LEVEL,
    SHADOW_LIFTS,
    dark_share,
    find_faces,
    holds_as_part,
    lift_shadows,
)
from icportrait_studio.geometry.facemesh import DetectedFace
from icportrait_studio.geometry.mirror_index import MIRROR_INDEX
from icportrait_studio.imaging.color import decode_to_linear

YALE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yaleB-dev"


def _yale(subject: str, tag: str) -> np.ndarray:
    path = YALE / subject / f"{subject}_P00{tag}.pgm"
    if not path.exists():
        pytest.skip("the Yale dev faces are not here")
    from PIL import Image

    return np.repeat(np.asarray(Image.open(path).convert("L"))[..., None], 3, axis=2)


def test_lift_shadows_keeps_black_and_white_and_order() -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lifted = lift_shadows(np.dstack([ramp] * 3), 0.5)[..., 0].ravel()
    assert lifted[0] == 0 and lifted[-1] == 255
    assert (np.diff(lifted.astype(int)) >= 0).all()
    assert lifted[51] > 100  # a shadow at 20 % reads at 45 %


def test_dark_share_counts_pixels_dark_in_every_channel() -> None:
    img = np.full((4, 5, 3), SHADOW_LEVEL - 1, np.uint8)  # 20 pixels, all dark ...
    img[0, 0, 2] = SHADOW_LEVEL  # ... but one with a channel at the level: not dark
    img[1, :, 0] = 255  # a row of red: not dark
    assert dark_share(img) == pytest.approx(14 / 20)
    assert dark_share(img[:, :0]) == 0.0  # an empty box
    assert dark_share(img[:, ::2]) == pytest.approx(np.mean(img[:, ::2].max(axis=2) < SHADOW_LEVEL))  # a view


def test_a_face_in_black_shadow_is_found_where_it_is() -> None:
    """yaleB08 lit from 70° to the right and 45° above: most of the face is black and the face mesh
    finds no face in the photo as it is (the analysis fell back to the outline's rough geometry); the
    lifted copy finds it, where the same face lies in the frontal photo of the same sitting."""
    rgb8 = _yale("yaleB08", "A-070E+45")
    assert facemesh.detect_with_padding(rgb8)[0] == []
    analysis = analyze(decode_to_linear(rgb8))
    assert analysis.has_face and analysis.landmarks is not None
    assert not any("no face" in w for w in analysis.warnings)
    frontal = analyze(decode_to_linear(_yale("yaleB08", "A+000E+00"))).landmarks
    assert frontal is not None
    off = np.linalg.norm(analysis.landmarks[:, :2] - frontal[:, :2], axis=1).mean() / np.ptp(frontal[:, 0])
    assert off < 0.05  # face widths (0.02 measured)


def _box_face(x0: float, y0: float, x1: float, y1: float) -> DetectedFace:
    lm = np.zeros((478, 3), np.float32)
    lm[:, 0] = np.linspace(x0, x1, 478)
    lm[:, 1] = np.linspace(y0, y1, 478)
    return DetectedFace(lm)


def test_a_small_face_inside_a_much_larger_one_is_a_part_of_it() -> None:
    whole = _box_face(0, 0, 200, 220)
    assert holds_as_part(whole, _box_face(50, 70, 150, 180))  # inside, half as wide
    assert not holds_as_part(whole, _box_face(30, 20, 170, 200))  # inside but not much narrower
    assert not holds_as_part(whole, _box_face(160, 70, 260, 180))  # half outside
    assert not holds_as_part(_box_face(50, 70, 150, 180), whole)  # the other way round


def test_a_part_read_as_a_face_gives_way_to_the_whole_face() -> None:
    """yaleB04 lit from 85° to the left: the photo as it is shows the detector a "face" made of the
    nostrils (for eyes) and the mouth, half the real face wide, and that reading agrees with its own mirror
    look better than the lifted copy's whole face does with its own; the whole face is kept."""
    rgb8 = _yale("yaleB04", "A+085E+20")
    plain = facemesh.detect_with_padding(rgb8)[0]
    assert plain and np.ptp(plain[0].landmarks[:, 0]) < 0.7 * rgb8.shape[1]
    analysis = analyze(decode_to_linear(rgb8))
    frontal = analyze(decode_to_linear(_yale("yaleB04", "A+000E+00"))).landmarks
    assert analysis.landmarks is not None and frontal is not None
    off = np.linalg.norm(analysis.landmarks[:, :2] - frontal[:, :2], axis=1).mean() / np.ptp(frontal[:, 0])
    assert off < 0.05  # face widths (the part reading: 0.22)


@pytest.mark.parametrize("subject, tag", [("yaleB06", "A-060E-20"), ("yaleB03", "A-050E+00")])
def test_a_face_read_as_part_of_itself_is_read_whole(subject: str, tag: str) -> None:
    """yaleB06 lit from 60° to the right and below, yaleB03 from 50° to the right: the photo as it is
    shows the detector a "face" a fifth or a third of the crop wide (the lit cheek; the nose and mouth,
    which its mirror look does not find); the lifted copy's reading agrees better with its mirror look
    and spans the whole face."""
    rgb8 = _yale(subject, tag)
    w = rgb8.shape[1]
    plain = facemesh.detect_with_padding(rgb8)[0]
    assert plain and np.ptp(plain[0].landmarks[:, 0]) < 0.35 * w
    analysis = analyze(decode_to_linear(rgb8))
    assert analysis.landmarks is not None and np.ptp(analysis.landmarks[:, 0]) > 0.8 * w


def test_only_dark_photos_are_looked_at_again(monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[int] = []
    monkeypatch.setattr(facemesh, "detect_with_padding", lambda rgb8, **kw: (looks.append(1), ([], False))[1])
    grey = np.full((200, 300, 3), 140, np.uint8)
    assert find_faces(grey, np.zeros((50, 75), np.float32)).faces == [] and len(looks) == 1
    dark = grey.copy()
    dark[:, :100] = 10  # a third of the frame in black shadow: the photo, then each lifted copy
    looks.clear()
    look = find_faces(dark, np.zeros((50, 75), np.float32))
    assert look.faces == [] and look.image is dark and len(looks) == 1 + len(SHADOW_LIFTS)


def _face(width: float) -> DetectedFace:
    rng = np.random.default_rng(0)
    lm = np.zeros((478, 3), np.float32)
    lm[:, 0] = 150 + rng.uniform(-width / 2, width / 2, 478)
    lm[:, 1] = rng.uniform(50, 150, 478)
    return DetectedFace(lm)


def _mirror_reading(face: DetectedFace, off: float) -> DetectedFace:
    """A mirror look's reading of ``face`` in a 300 px wide frame: mirrored back, each landmark lands
    ``off`` px from the direct reading's."""
    m = face.landmarks.copy()
    m[:, 0] = 300 - m[:, 0] + off
    return DetectedFace(m[np.asarray(MIRROR_INDEX)])


@pytest.mark.parametrize("lifted_agrees_better", [True, False])
def test_the_look_that_agrees_with_its_mirror_is_kept(monkeypatch: pytest.MonkeyPatch,
                                                      lifted_agrees_better: bool) -> None:
    dark = np.full((200, 300, 3), 140, np.uint8)
    dark[:, :100] = 10
    # two readings of about the same size (neither holds the other as a part): agreement decides
    plain_face, lifted_face = _face(60), _face(80)

    def detect(rgb8: np.ndarray, **kw):  # type: ignore[no-untyped-def]
        return ([plain_face] if rgb8 is dark else [lifted_face]), False

    def mirror(image, matte, face, padded=False):  # type: ignore[no-untyped-def]
        return _mirror_reading(face, 2.0 if (face is lifted_face) == lifted_agrees_better else 30.0)

    monkeypatch.setattr(facemesh, "detect_with_padding", detect)
    monkeypatch.setattr(face_looks, "mirrored_face", mirror)
    # the face found in the photo is a fifth of the person's outline wide: it may be part of a face
    look = find_faces(dark, np.ones((50, 75), np.float32))
    assert look.mirror_looked and look.mirror is not None
    assert (look.faces[0] is lifted_face) == lifted_agrees_better
    assert (look.image is dark) != lifted_agrees_better


def test_a_reading_inside_a_much_larger_one_gives_way_even_when_it_agrees_better(
        monkeypatch: pytest.MonkeyPatch) -> None:
    dark = np.full((200, 300, 3), 140, np.uint8)
    dark[:, :100] = 10
    plain_face, lifted_face = _face(60), _face(200)  # the plain reading lies inside the lifted one

    def detect(rgb8: np.ndarray, **kw):  # type: ignore[no-untyped-def]
        return ([plain_face] if rgb8 is dark else [lifted_face]), False

    def mirror(image, matte, face, padded=False):  # type: ignore[no-untyped-def]
        return _mirror_reading(face, 2.0 if face is plain_face else 30.0)  # the part agrees better

    monkeypatch.setattr(facemesh, "detect_with_padding", detect)
    monkeypatch.setattr(face_looks, "mirrored_face", mirror)
    look = find_faces(dark, np.ones((50, 75), np.float32))
    assert look.faces[0] is lifted_face and look.image is not dark


@pytest.mark.parametrize("mirror_off", [2.0, 30.0, None])
def test_a_mostly_lit_face_is_read_again_only_when_its_mirror_look_disagrees(monkeypatch: pytest.MonkeyPatch,
                                                                            mirror_off: float | None) -> None:
    """A face with a sixth of its box in shadow, half the outline wide, in a dark photo: its mirror look
    (the analysis takes it anyway) agrees, and nothing more is read; or it disagrees (30 px on a 150 px
    face) or finds no face (a 'face' the size of a nose on a half-lit face): the lifted copy is read."""
    dark = np.full((200, 300, 3), 140, np.uint8)
    dark[:, :100] = 10
    face = _face(150)
    looks: list[np.ndarray] = []

    def detect(rgb8: np.ndarray, **kw):  # type: ignore[no-untyped-def]
        looks.append(rgb8)
        return [face], False

    def mirror(image, matte, f, padded=False):  # type: ignore[no-untyped-def]
        return None if mirror_off is None else _mirror_reading(f, mirror_off)

    monkeypatch.setattr(facemesh, "detect_with_padding", detect)
    monkeypatch.setattr(face_looks, "mirrored_face", mirror)
    look = find_faces(dark, np.ones((50, 75), np.float32))
    assert look.mirror_looked and look.image is dark  # the lifted reading is no better here: a tie
    assert len(looks) == (1 if mirror_off == 2.0 else 2)


def test_other_faces_stay_as_the_photo_showed_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two people, the first's face in deep shadow: its lifted reading (agreeing better) replaces it, and
    the second face, lit, stays as the photo's look found it even if the lifted copy missed it."""
    dark = np.full((200, 300, 3), 140, np.uint8)
    dark[:, :200] = 10
    first, second, first_lifted = _face(60), _face(40), _face(70)
    second.landmarks[:, 0] += 100  # x 230..270, in the lit part

    def detect(rgb8: np.ndarray, **kw):  # type: ignore[no-untyped-def]
        return ([first, second] if rgb8 is dark else [first_lifted]), False

    def mirror(image, matte, face, padded=False):  # type: ignore[no-untyped-def]
        return _mirror_reading(face, 1.0 if face is first_lifted else 20.0)

    monkeypatch.setattr(facemesh, "detect_with_padding", detect)
    monkeypatch.setattr(face_looks, "mirrored_face", mirror)
    look = find_faces(dark, np.ones((50, 75), np.float32))
    assert look.faces[0] is first_lifted and look.faces[1:] == [second]
