"""A face half in black shadow is found in a copy with its shadows lifted, and only dark photos pay for it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.analysis import analyze
from icportrait_studio.imaging.color import decode_to_linear

YALE = Path(__file__).resolve().parents[2] / "shared" / "data" / "yaleB-dev"


def test_lift_shadows_keeps_black_and_white_and_order() -> None:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    lifted = facemesh.lift_shadows(np.dstack([ramp] * 3), 0.5)[..., 0].ravel()
    assert lifted[0] == 0 and lifted[-1] == 255
    assert (np.diff(lifted.astype(int)) >= 0).all()
    assert lifted[51] > 100  # a shadow at 20 % reads at 45 %


def test_a_face_lit_from_below_is_found() -> None:
    """yaleB01 lit from 35° below: the face mesh finds no face in the photo as it is (half the face is
    black), so the analysis fell back to the outline's rough geometry; the lifted copy finds it."""
    path = YALE / "yaleB01" / "yaleB01_P00A+000E-35.pgm"
    if not path.exists():
        pytest.skip("the Yale dev faces are not here")
    from PIL import Image

    rgb8 = np.repeat(np.asarray(Image.open(path).convert("L"))[..., None], 3, axis=2)
    assert facemesh.detect_with_padding(rgb8)[0] == []
    analysis = analyze(decode_to_linear(rgb8))
    assert analysis.has_face and analysis.landmarks is not None
    # the landmarks are this face's: the eyes in the upper half, the chin near the bottom
    lm = analysis.landmarks
    h = rgb8.shape[0]
    assert float(lm[33, 1]) < 0.5 * h and float(lm[263, 1]) < 0.5 * h and float(lm[152, 1]) > 0.75 * h
    assert not any("no face" in w for w in analysis.warnings)


def test_a_well_lit_photo_without_a_face_takes_no_lifted_looks(monkeypatch: pytest.MonkeyPatch) -> None:
    looks: list[int] = []
    monkeypatch.setattr(facemesh, "detect_with_padding", lambda rgb8, **kw: (looks.append(1), ([], False))[1])
    grey = np.full((200, 300, 3), 140, np.uint8)
    assert facemesh.detect_in_shadow(grey) == ([], False, None) and looks == []
    dark = grey.copy()
    dark[:, :100] = 10  # a third of the frame in black shadow: both lifts are tried
    assert facemesh.detect_in_shadow(dark)[0] == [] and len(looks) == len(facemesh.SHADOW_LIFTS)
