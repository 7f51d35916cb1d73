"""An imported image's colours moved into the document's profile (imaging/profile_convert.py)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms
from PySide6.QtGui import QColorSpace

from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.imaging.profile_convert import convert_between, readable


def _qt(name: str) -> bytes:
    return bytes(QColorSpace(getattr(QColorSpace.NamedColorSpace, name)).iccProfile().data())


CODES = np.random.default_rng(5).integers(0, 256, (60, 70, 3), dtype=np.uint8)


@pytest.mark.parametrize(("src", "dst"), [("SRgb", "ProPhotoRgb"), ("AdobeRgb", "SRgb"), ("DisplayP3", "AdobeRgb"),
                                          ("ProPhotoRgb", "DisplayP3")])
def test_conversions_agree_with_littlecms(src: str, dst: str) -> None:
    a, b = _qt(src), _qt(dst)
    ours = encode_from_linear(convert_between(decode_to_linear(CODES), a, b), 8)  # type: ignore[arg-type]
    lcms = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(a)), ImageCms.ImageCmsProfile(io.BytesIO(b)),
                                   "RGB", "RGB", renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    ref = np.asarray(ImageCms.applyTransform(Image.fromarray(CODES), lcms))
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.1


def _three_curves() -> bytes:
    """A matrix-shaper profile with a tone curve of its own per channel (gamma 1.8, 2.2, 2.6), as a
    camera's or a calibrated monitor's profile has."""
    from PySide6.QtCore import QPointF

    tables = [[round(65535 * (i / 1023) ** g) for i in range(1024)] for g in (1.8, 2.2, 2.6)]
    space = QColorSpace(QPointF(0.3127, 0.3290), QPointF(0.64, 0.33), QPointF(0.30, 0.60), QPointF(0.15, 0.06),
                        *tables)
    assert space.isValid()
    return bytes(space.iccProfile().data())


@pytest.mark.parametrize("into", [None, "AdobeRgb"])
def test_a_profile_with_a_curve_per_channel_converts_as_littlecms_does(into: str | None) -> None:
    src, dst = _three_curves(), (None if into is None else _qt(into))
    assert readable(src)
    ours = encode_from_linear(convert_between(decode_to_linear(CODES), src, dst), 8)  # type: ignore[arg-type]
    target = ImageCms.createProfile("sRGB") if dst is None else ImageCms.ImageCmsProfile(io.BytesIO(dst))
    lcms = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(src)), target, "RGB", "RGB",
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    ref = np.asarray(ImageCms.applyTransform(Image.fromarray(CODES), lcms))
    diff = np.abs(ours.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and diff.mean() < 0.15
    back = convert_between(convert_between(decode_to_linear(CODES), None, src), src, None)  # type: ignore[arg-type]
    assert np.abs(encode_from_linear(back, 8).astype(int) - CODES.astype(int)).max() <= 1  # type: ignore[arg-type]


def test_no_profile_is_srgb_and_the_same_profile_is_left_alone() -> None:
    held = decode_to_linear(CODES)
    assert convert_between(held, None, None) is None and convert_between(held, _qt("AdobeRgb"), _qt("AdobeRgb")) is None
    into_srgb = convert_between(held, _qt("AdobeRgb"), None)
    assert into_srgb is not None
    assert np.abs(encode_from_linear(into_srgb, 8).astype(int)
                  - encode_from_linear(convert_between(held, _qt("AdobeRgb"), _qt("SRgb")), 8).astype(int)).max() <= 1  # type: ignore[arg-type]


def test_unreadable_profiles_are_refused_not_guessed() -> None:
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert readable(None) and readable(_qt("ProPhotoRgb")) and not readable(lab) and not readable(b"junk" * 40)
    assert convert_between(decode_to_linear(CODES), lab, None) is None


def test_sixteen_bit_values_survive_a_round_trip_through_a_wider_space() -> None:
    codes16 = np.random.default_rng(6).integers(2000, 60000, (40, 40, 3)).astype(np.uint16)
    held = decode_to_linear(codes16)
    there = convert_between(held, None, _qt("ProPhotoRgb"))
    back = convert_between(there, _qt("ProPhotoRgb"), None)  # type: ignore[arg-type]
    assert np.abs(encode_from_linear(back, 16).astype(int) - codes16.astype(int)).max() <= 32  # of 65535  # type: ignore[arg-type]


def test_a_gray_profile_converts_through_its_own_curve() -> None:
    from test_display_profile import _gray_profile

    linear_gray = _gray_profile(256)  # gamma 1.0: the codes are light
    codes = np.linspace(0, 255, 52).round().astype(np.uint8).reshape(4, 13)
    held = decode_to_linear(np.repeat(codes[..., None], 3, axis=2))
    into_srgb = convert_between(held, linear_gray, None)
    assert into_srgb is not None and readable(linear_gray)
    np.testing.assert_allclose(into_srgb, np.repeat((codes / 255.0)[..., None], 3, axis=2), atol=2e-4)
    assert convert_between(held, b"\x00" * 200, None) is None and not readable(b"\x00" * 200)


def test_as_srgb_for_the_web() -> None:
    from icportrait_studio.imaging.display_profile import profile_name
    from icportrait_studio.imaging.profile_convert import as_srgb

    held = decode_to_linear(CODES)
    rgb, icc, note = as_srgb(held, _qt("ProPhotoRgb"), "srgb")
    assert note is None and profile_name(icc) is not None and "sRGB" in profile_name(icc)  # type: ignore[operator]
    np.testing.assert_array_equal(rgb, convert_between(held, _qt("ProPhotoRgb"), None))  # type: ignore[arg-type]
    assert as_srgb(held, None, "srgb")[0] is held and as_srgb(held, None, "linear")[0] is held
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert as_srgb(held, lab, "srgb")[2] is not None  # not converted, and said so
    # a linear photo in Adobe RGB's primaries: light stays light, only the primaries change
    linear_adobe = bytes(QColorSpace(QColorSpace.Primaries.AdobeRgb, QColorSpace.TransferFunction.Linear)
                         .iccProfile().data())
    light = np.full((2, 2, 3), [0.2, 0.5, 0.1], np.float32)
    moved, _, note = as_srgb(light, linear_adobe, "linear")
    assert note is None and moved.shape == light.shape and np.abs(moved - light).max() > 0.01
    # the same colours through the general path: light read as the codes of a linear profile
    from icportrait_studio.imaging.color import srgb_to_linear

    general = convert_between(srgb_to_linear(light), linear_adobe, None)
    np.testing.assert_allclose(moved, general, atol=2e-3)  # type: ignore[arg-type]


def test_cli_to_srgb_writes_srgb_colours_with_srgbs_profile(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    from icportrait_studio.imaging.display_profile import profile_name
    from icportrait_studio.imaging.io import load_image

    src = tmp_path / "prophoto.png"
    Image.open(Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png").convert("RGB").save(
        src, icc_profile=_qt("ProPhotoRgb"))
    cli = [sys.executable, "-m", "icportrait_studio.cli", "relight", str(src), "--light", "azimuth=30,elevation=20"]
    subprocess.run([*cli, "-o", str(tmp_path / "own.png")], check=True, capture_output=True)
    subprocess.run([*cli, "-o", str(tmp_path / "web.png"), "--to-srgb"], check=True, capture_output=True)
    own, web = load_image(tmp_path / "own.png"), load_image(tmp_path / "web.png")
    assert own.icc_profile == _qt("ProPhotoRgb") and "sRGB" in (profile_name(web.icc_profile) or "")
    own8 = encode_from_linear(own.rgb, 8)
    lcms = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(_qt("ProPhotoRgb"))),
                                   ImageCms.createProfile("sRGB"), "RGB", "RGB",
                                   renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    expected = np.asarray(ImageCms.applyTransform(Image.fromarray(own8), lcms)).astype(int)
    diff = np.abs(encode_from_linear(web.rgb, 8).astype(int) - expected)
    # ``own`` went through 8-bit ProPhoto codes, ``web`` straight from the render: a few codes apart where
    # one ProPhoto step spans several sRGB ones (dark, saturated colours)
    assert diff.mean() < 0.2 and np.percentile(diff, 99.9) <= 3, (diff.mean(), np.percentile(diff, 99.9))


def test_view_cli_to_srgb(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.cli import main
    from icportrait_studio.imaging.display_profile import profile_name
    from icportrait_studio.imaging.io import load_image

    src = tmp_path / "adobe.png"
    Image.open(Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png").convert("RGB").save(
        src, icc_profile=_qt("AdobeRgb"))
    assert main(["view", str(src), "-o", str(tmp_path / "web.jpg"), "--yaw", "10", "--to-srgb", "-q"]) == 0
    assert "sRGB" in (profile_name(load_image(tmp_path / "web.jpg").icc_profile) or "")


def test_a_profile_built_from_tables_converts_through_littlecms() -> None:
    """Adobe RGB written as lookup tables converts as Adobe RGB written as a matrix shaper does."""
    from test_display_profile import _adobe_as_tables

    from icportrait_studio.imaging.profile_convert import as_srgb, by_tables

    tables, adobe = _adobe_as_tables()
    assert readable(tables) and by_tables(tables) and not by_tables(adobe) and not by_tables(None)
    held = decode_to_linear(CODES)
    via_tables, via_matrix = convert_between(held, tables, None), convert_between(held, adobe, None)
    assert via_tables is not None and via_matrix is not None
    diff = np.abs(encode_from_linear(via_tables, 8).astype(int) - encode_from_linear(via_matrix, 8).astype(int))
    assert np.percentile(diff.max(axis=-1), 98) <= 1 and diff.mean() < 0.2  # LittleCMS's grid at the gamut's edge
    assert convert_between(held, None, tables) is None  # it has no table out of XYZ (B2A0): nothing to go into
    web, _icc, note = as_srgb(held, tables, "srgb")
    assert note is None and np.array_equal(web, via_tables)


def test_a_16_bit_layer_converted_through_tables_says_it_lost_precision(tmp_path: Path) -> None:
    from test_display_profile import _adobe_as_tables

    from icportrait_studio.imaging.io import save_image
    from icportrait_studio.pipeline.progress import CancelToken, no_progress
    from icportrait_studio.ui.work import import_work

    tables = _adobe_as_tables()[0]
    held = decode_to_linear(CODES)
    for bits in (8, 16):
        path = tmp_path / f"layer{bits}.png"
        save_image(path, held, bit_depth=bits, icc_profile=tables)
        rgb, _alpha, _display, note = import_work(str(path), (70, 60), None)(no_progress, CancelToken())  # type: ignore[misc]
        assert np.abs(encode_from_linear(rgb, 8).astype(int) - CODES.astype(int)).max() >= 20  # converted
        assert (note is not None and "8-bit precision" in note) is (bits == 16)
    path = tmp_path / "plain.png"
    save_image(path, held, bit_depth=8)
    rgb, _alpha, _display, note = import_work(str(path), (70, 60), tables)(no_progress, CancelToken())  # type: ignore[misc]
    assert note is not None and "not converted" in note  # into a document whose profile cannot be written to
