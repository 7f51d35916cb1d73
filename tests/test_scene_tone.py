"""Relighting a ProPhoto RGB photo in its own linear light (imaging/scene_tone.py, the backends' boundary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtGui import QColorSpace

from icportrait_studio.api import relight, relight_file
from icportrait_studio.core.document import Document
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.imaging.io import load_image
from icportrait_studio.imaging.scene_tone import from_scene_linear, scene_gamma, to_scene_linear

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"


def _icc(space: QColorSpace) -> bytes:
    return bytes(space.iccProfile().data())


PROPHOTO = _icc(QColorSpace(QColorSpace.NamedColorSpace.ProPhotoRgb))  # gamma 1.8 with ROMM's short toe
PROPHOTO_PURE = _icc(QColorSpace(QColorSpace.Primaries.ProPhotoRgb, 1.8))
ADOBE = _icc(QColorSpace(QColorSpace.NamedColorSpace.AdobeRgb))


def test_which_profiles_are_relit_at_their_own_gamma() -> None:
    assert scene_gamma(PROPHOTO) == pytest.approx(1.8, abs=1e-3)
    assert scene_gamma(PROPHOTO_PURE) == pytest.approx(1.8, abs=1e-3)
    gamma_24 = _icc(QColorSpace(QColorSpace.Primaries.SRgb, 2.6))
    assert scene_gamma(gamma_24) == pytest.approx(2.6, abs=1e-3)
    for icc in (None, ADOBE, _icc(QColorSpace(QColorSpace.NamedColorSpace.SRgb)),
                _icc(QColorSpace(QColorSpace.NamedColorSpace.DisplayP3)), b"garbage" * 30):
        assert scene_gamma(icc) is None  # sRGB's curve is right, or near enough (Adobe RGB's 2.2)
    assert scene_gamma(PROPHOTO, "linear") is None  # decoded as linear light already
    assert Document(base=np.zeros((4, 4, 3), np.float32), icc_profile=PROPHOTO).tone == pytest.approx(1.8, abs=1e-3)


def test_the_conversions_are_inverse_and_exact_for_every_8_bit_code() -> None:
    codes = np.arange(256, dtype=np.uint8).reshape(16, 16)
    held = decode_to_linear(codes)  # what the app holds for these codes
    scene = to_scene_linear(held, 1.8)
    np.testing.assert_allclose(scene, (codes / 255.0) ** 1.8, atol=2e-5)  # the codes through gamma 1.8
    assert np.array_equal(encode_from_linear(from_scene_linear(scene, 1.8), 8), codes)


def test_a_prophoto_photo_gets_the_shadows_its_gamma_calls_for() -> None:
    """The same codes relit as sRGB and as ProPhoto: where the light falls away, the ProPhoto codes must
    fall as a 1.8 curve carries the light's ratio (r^(1/1.8)), further than sRGB's ~2.2 does."""
    codes = np.asarray(Image.open(SAMPLE).convert("RGB"))
    held = decode_to_linear(codes)
    rig = LightRig(lights=(Light(azimuth=80, elevation=10),), ambient=0.05)
    as_srgb = relight(held, rig, image_id="tone-test-srgb").image
    as_prophoto = relight(held, rig, image_id="tone-test-prophoto", tone=1.8).image
    c0 = codes.astype(np.float64) / 255
    c_srgb = encode_from_linear(as_srgb, 8).astype(np.float64) / 255
    c_pro = encode_from_linear(as_prophoto, 8).astype(np.float64) / 255
    ratio_light = (c_srgb / np.maximum(c0, 1e-3)) ** 2.2  # the light's ratio the sRGB run applied
    shaded = (c0 > 0.2) & (ratio_light > 0.05) & (ratio_light < 0.5)
    assert shaded.sum() > 2000
    got = np.median(c_pro[shaded] / c0[shaded])
    assert got < np.median(c_srgb[shaded] / c0[shaded]) - 0.03  # deeper shadows than the sRGB reading
    assert got == pytest.approx(np.median(ratio_light[shaded] ** (1 / 1.8)), abs=0.05)


def test_relight_file_reports_the_gamma_and_keeps_the_profile(tmp_path: Path) -> None:
    src = tmp_path / "prophoto.png"
    Image.open(SAMPLE).convert("RGB").save(src, icc_profile=PROPHOTO_PURE)
    out = relight_file(src, tmp_path / "out.png", LightRig(lights=(Light(azimuth=40, elevation=20),)))
    assert out.info["relit_at_gamma"] == pytest.approx(1.8, abs=1e-3) and out.info["encoding"] == "srgb"
    assert load_image(tmp_path / "out.png").icc_profile == PROPHOTO_PURE
    plain = tmp_path / "plain.png"
    Image.open(SAMPLE).convert("RGB").save(plain)
    assert "relit_at_gamma" not in relight_file(plain, tmp_path / "o2.png", LightRig()).info
