"""The padded second pass of face detection: tight crops, and small faces that may be part of a face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.facemesh import DetectedFace


def _face(x0: float, y0: float, x1: float, y1: float) -> DetectedFace:
    lm = np.zeros((478, 3), np.float32)
    lm[:, 0] = np.linspace(x0, x1, 478)
    lm[:, 1] = np.linspace(y0, y1, 478)
    return DetectedFace(lm)


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Script the detector: answers[0] for the plain image, answers[1] for the padded (larger) one."""
    answers: list[list[DetectedFace]] = [[], []]
    calls: list[tuple[int, int]] = []

    def fake(rgb8: np.ndarray) -> list[DetectedFace]:
        calls.append(rgb8.shape[:2])
        return answers[0] if rgb8.shape[:2] == IMG.shape[:2] else answers[1]

    monkeypatch.setattr(facemesh, "detect_faces", fake)
    return answers, calls


IMG = np.zeros((200, 180, 3), np.uint8)
PW, PH = int(180 * 0.35), int(200 * 0.35)
FILLED = np.ones((100, 90), np.float32)  # a person matte (half size) covering the whole crop
HEAD = np.zeros((100, 90), np.float32)
HEAD[20:70, 28:60] = 1.0  # a head-and-shoulders outline about as wide as a 50 px face


def test_a_large_face_inside_the_frame_needs_no_second_pass(passes) -> None:  # type: ignore[no-untyped-def]
    answers, calls = passes
    answers[0] = [_face(20, 30, 160, 180)]
    faces, padded = facemesh.detect_with_padding(IMG)
    assert not padded and len(calls) == 1 and faces[0].bbox[0] == pytest.approx(20)


def test_a_small_face_in_a_tight_crop_is_replaced_by_the_whole_face_found_with_padding(passes) -> None:  # type: ignore[no-untyped-def]
    answers, calls = passes
    answers[0] = [_face(60, 60, 110, 110)]  # 50 px: part of the face
    answers[1] = [_face(PW - 10, PH - 5, PW + 185, PH + 205)]  # the whole face, running off the crop
    faces, padded = facemesh.detect_with_padding(IMG, matte=FILLED)
    assert padded and len(calls) == 2
    x0, y0, x1, _ = faces[0].bbox
    assert x0 == pytest.approx(-10) and y0 == pytest.approx(-5) and x1 - x0 == pytest.approx(195)


def test_small_faces_in_a_wide_shot_are_kept_when_padding_finds_the_same(passes) -> None:  # type: ignore[no-untyped-def]
    answers, calls = passes
    answers[0] = [_face(60, 60, 110, 110), _face(120, 70, 160, 110)]
    answers[1] = [_face(PW + 60, PH + 60, PW + 110, PH + 110)]
    faces, padded = facemesh.detect_with_padding(IMG, matte=FILLED)
    assert not padded and len(calls) == 2 and len(faces) == 2 and faces[0].bbox[0] == pytest.approx(60)


def test_a_small_face_as_wide_as_its_outline_needs_no_second_pass(passes) -> None:  # type: ignore[no-untyped-def]
    answers, calls = passes
    answers[0] = [_face(60, 50, 110, 130)]
    _, padded = facemesh.detect_with_padding(IMG, matte=HEAD)
    assert not padded and len(calls) == 1
    facemesh.detect_with_padding(IMG)  # without a matte: no check either
    assert len(calls) == 2


def test_no_face_then_padding(passes) -> None:  # type: ignore[no-untyped-def]
    answers, _ = passes
    answers[1] = [_face(PW, PH, PW + 100, PH + 120)]
    faces, padded = facemesh.detect_with_padding(IMG)
    assert padded and faces[0].bbox[0] == pytest.approx(0)


def test_the_padded_pass_sets_the_crop_on_a_neutral_grey_backdrop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Repeated edge pixels drew stripes from the hair and jaw that the detector read as structure; the
    border is flat grey."""
    seen: list[np.ndarray] = []
    monkeypatch.setattr(facemesh, "detect_faces", lambda rgb8: (seen.append(rgb8.copy()), [])[1])
    img = np.zeros((200, 180, 3), np.uint8)
    img[:, 0] = 255  # a white left column and a dark right one: nothing of either may spread out
    assert facemesh.detect_with_padding(img) == ([], False)
    padded = seen[-1]
    assert padded.shape == (200 + 2 * PH, 180 + 2 * PW, 3)
    np.testing.assert_array_equal(padded[PH:PH + 200, PW:PW + 180], img)
    border = np.ones(padded.shape[:2], bool)
    border[PH:PH + 200, PW:PW + 180] = False
    assert (padded[border] == facemesh.PAD_GREY).all()


def test_a_tight_crop_the_edge_padding_missed_is_found() -> None:
    """yaleB02 lit from 25° left: a well-lit tight crop (with the scan-line noise some Yale frames carry)
    in which the edge-padded pass found no face."""
    yale = Path(__file__).resolve().parents[2] / "shared" / "data" / "yaleB-dev" / "yaleB02"
    paths = [yale / f"yaleB02_P00{tag}.pgm" for tag in ("A+025E+00", "A+000E+00")]
    if not all(p.exists() for p in paths):
        pytest.skip("the Yale dev faces are not here")
    side, frontal = (np.repeat(np.asarray(Image.open(p).convert("L"))[..., None], 3, axis=2) for p in paths)
    found, padded = facemesh.detect_with_padding(side)
    reference = facemesh.detect_with_padding(frontal)[0]
    assert found and padded and reference
    # the same sitting: the face lies where it lies in the frontal photo
    off = np.linalg.norm(found[0].landmarks[:, :2] - reference[0].landmarks[:, :2], axis=1).mean()
    assert off < 0.05 * np.ptp(reference[0].landmarks[:, 0])
