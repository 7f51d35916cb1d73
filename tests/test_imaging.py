"""Tests for the Qt-free image I/O layer: colour transfer, loading edge cases (atomic saving: test_atomic.py)."""

from __future__ import annotations

import struct
import tracemalloc
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms, ImageOps

import icportrait_studio.imaging.io as imaging_io
from icportrait_studio.errors import InputError
from icportrait_studio.imaging import (
    decode_to_linear,
    encode_from_linear,
    image_info,
    linear_to_srgb,
    load_image,
    save_image,
    srgb_to_linear,
)

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()

# 4 columns x 3 rows of distinct flat colours: any rotation or flip changes the layout.
BLOCK = 16
PALETTE = np.array(
    [
        [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]],
        [[0, 255, 255], [255, 0, 255], [255, 255, 255], [0, 0, 0]],
        [[128, 64, 0], [0, 128, 64], [64, 0, 128], [200, 200, 200]],
    ],
    dtype=np.uint8,
)


def _blocks() -> np.ndarray:
    """Asymmetric 48x64 RGB uint8 test picture made of flat 16x16 blocks."""
    return np.repeat(np.repeat(PALETTE, BLOCK, axis=0), BLOCK, axis=1)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _write_raw_png(path: Path, width: int, height: int, bit_depth: int, color_type: int, idat: bytes) -> None:
    """Hand-made PNG: lets tests claim any header size, or write layouts Pillow/OpenCV cannot."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    )


def _srgb8(lin: np.ndarray) -> np.ndarray:
    return encode_from_linear(lin, 8)


# ---------------------------------------------------------------------------------------------------
# color.py


def test_uint8_lut_round_trip_is_exact() -> None:
    codes = np.arange(256, dtype=np.uint8)
    assert np.array_equal(encode_from_linear(decode_to_linear(codes), 8), codes)
    # Also through an image-shaped (cv2.LUT) path.
    img = np.broadcast_to(codes[None, :, None], (4, 256, 3)).copy()
    assert np.array_equal(encode_from_linear(decode_to_linear(img), 8), img)


def test_srgb_known_values_and_inverse() -> None:
    assert srgb_to_linear(np.float32(0.5)) == pytest.approx(0.21404, abs=1e-4)
    assert srgb_to_linear(np.float32(0.04045)) == pytest.approx(0.0031308, abs=1e-6)
    assert linear_to_srgb(np.float32(0.0031308)) == pytest.approx(0.04045, abs=1e-6)
    assert linear_to_srgb(np.float32(0.21404)) == pytest.approx(0.5, abs=1e-4)
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    assert srgb_to_linear(x).dtype == np.float32
    assert srgb_to_linear(x)[[0, -1]] == pytest.approx([0.0, 1.0])
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=2e-6)


def test_decode_luts_match_exact_curve() -> None:
    v16 = np.arange(0, 65536, 7, dtype=np.uint16)
    np.testing.assert_allclose(decode_to_linear(v16), srgb_to_linear(v16 / np.float32(65535)), atol=1e-6)
    v8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    np.testing.assert_allclose(decode_to_linear(v8), srgb_to_linear(v8 / np.float32(255)), atol=1e-6)
    assert decode_to_linear(v8).shape == (16, 16)


def test_encode_clips_and_handles_non_finite() -> None:
    lin = np.array([-1.0, np.nan, np.inf, -np.inf, 0.0, 1.0, 2.0, 1e9], dtype=np.float32)
    assert encode_from_linear(lin, 8).tolist() == [0, 0, 255, 0, 0, 255, 255, 255]
    assert encode_from_linear(lin, 16).tolist() == [0, 0, 65535, 0, 0, 65535, 65535, 65535]
    assert encode_from_linear(lin, 16).dtype == np.uint16
    with pytest.raises(ValueError):
        encode_from_linear(lin, 12)


def test_encode_matches_exact_curve() -> None:
    lin = np.random.default_rng(1).random((64, 64, 3), dtype=np.float32)
    exact8 = np.rint(linear_to_srgb(lin) * 255)
    assert np.abs(encode_from_linear(lin, 8) - exact8).max() <= 1
    mid = lin[lin > 0.05]  # away from the steep toe, 65536 levels are within a code or so
    exact16 = np.rint(linear_to_srgb(mid) * 65535)
    assert np.abs(encode_from_linear(mid, 16).astype(np.int64) - exact16).max() <= 2


# ---------------------------------------------------------------------------------------------------
# load / save round trips


def test_png_8bit_round_trip(tmp_path: Path) -> None:
    lin = np.random.default_rng(3).random((33, 47, 3), dtype=np.float32)
    p = tmp_path / "out.png"
    save_image(p, lin)
    img = load_image(p)
    assert img.bit_depth == 8 and img.source_mode == "RGB" and img.alpha is None
    assert img.rgb.dtype == np.float32 and img.rgb.flags.c_contiguous and img.rgb.shape == (33, 47, 3)
    assert img.size == (47, 33)
    assert np.array_equal(_srgb8(img.rgb), _srgb8(lin))  # lossless at 8 bits
    assert np.abs(linear_to_srgb(img.rgb) - linear_to_srgb(lin)).max() <= 1 / 255
    assert image_info(p) == (47, 33, "RGB")


def test_png_alpha_round_trip_not_premultiplied(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    lin = rng.random((20, 30, 3), dtype=np.float32)
    alpha = rng.random((20, 30), dtype=np.float32)
    alpha[0, 0] = 0.0  # colour under zero alpha must survive too
    p = tmp_path / "a.png"
    save_image(p, lin, alpha=alpha)
    img = load_image(p)
    assert img.source_mode == "RGBA" and img.alpha is not None
    assert img.alpha.dtype == np.float32 and img.alpha.shape == (20, 30)
    assert np.abs(img.alpha - alpha).max() <= 0.5 / 255 + 1e-6
    assert np.array_equal(_srgb8(img.rgb), _srgb8(lin))


def test_png_16bit_rgb_keeps_full_precision(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    rgb16 = rng.integers(20000, 60000, (24, 32, 3), dtype=np.uint16)
    rgb16[0, :3, 0] = [30000, 30001, 30002]  # differ below 8-bit precision (1 step = 257)
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))
    assert ok
    p = tmp_path / "rgb16.png"
    p.write_bytes(buf.tobytes())
    img = load_image(p)
    assert img.bit_depth == 16 and img.source_mode == "RGB;16"
    back = encode_from_linear(img.rgb, 16).astype(np.int64)
    assert np.abs(back - rgb16).max() <= 2  # channel order kept (RGB, not BGR) and ~16-bit exact
    assert np.all(np.diff(img.rgb[0, :3, 0]) > 0)  # 1/65535 steps survive decoding


def test_png_16bit_gray_and_gray_alpha(tmp_path: Path) -> None:
    gray = (np.arange(16 * 20, dtype=np.uint16).reshape(16, 20) * 151 + 9000).astype(np.uint16)
    ok, buf = cv2.imencode(".png", gray)
    assert ok
    p = tmp_path / "g16.png"
    p.write_bytes(buf.tobytes())
    img = load_image(p)
    assert img.bit_depth == 16 and img.source_mode == "I;16" and img.alpha is None
    assert np.array_equal(img.rgb[..., 0], img.rgb[..., 1]) and np.array_equal(img.rgb[..., 0], img.rgb[..., 2])
    assert np.abs(encode_from_linear(img.rgb[..., 0], 16).astype(np.int64) - gray).max() <= 2

    # 16-bit gray+alpha (colour type 4), which neither Pillow nor OpenCV can write.
    ga = np.stack([gray, np.full_like(gray, 32768)], axis=2)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in ga)
    pa = tmp_path / "ga16.png"
    _write_raw_png(pa, 20, 16, 16, 4, zlib.compress(rows))
    img = load_image(pa)
    assert img.bit_depth == 16 and img.source_mode == "LA;16"
    assert img.alpha is not None and img.alpha == pytest.approx(np.full((16, 20), 32768 / 65535), abs=1e-6)
    assert np.abs(encode_from_linear(img.rgb[..., 1], 16).astype(np.int64) - gray).max() <= 2


def test_png_16bit_save_round_trip_with_icc_and_alpha(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    lin = rng.random((18, 22, 3), dtype=np.float32) * 0.8 + 0.1
    alpha = rng.random((18, 22), dtype=np.float32)
    p = tmp_path / "o16.png"
    save_image(p, lin, alpha=alpha, bit_depth=16, icc_profile=SRGB_ICC)
    img = load_image(p)
    assert img.bit_depth == 16 and img.source_mode == "RGBA;16"
    assert img.icc_profile == SRGB_ICC
    assert np.abs(img.rgb - lin).max() < 1e-4
    assert img.alpha is not None and np.abs(img.alpha - alpha).max() < 1e-4


def test_tiff_16bit_round_trip_keeps_icc_and_alpha(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    lin = rng.random((25, 31, 3), dtype=np.float32) * 0.9 + 0.05
    alpha = rng.random((25, 31), dtype=np.float32)
    p = tmp_path / "o.tif"
    save_image(p, lin, alpha=alpha, icc_profile=SRGB_ICC)  # TIFF defaults to 16 bits
    with tifffile.TiffFile(p) as tf:
        assert tf.pages[0].dtype == np.uint16 and tf.pages[0].samplesperpixel == 4
    img = load_image(p)
    assert img.bit_depth == 16 and img.source_mode == "RGBA;16"
    assert img.icc_profile == SRGB_ICC
    assert np.abs(img.rgb - lin).max() < 1e-4
    assert img.alpha is not None and np.abs(img.alpha - alpha).max() < 1e-4
    assert image_info(p) == (31, 25, "RGBA;16")

    p8 = tmp_path / "o8.tiff"
    save_image(p8, lin, bit_depth=8)
    img8 = load_image(p8)
    assert img8.bit_depth == 8 and img8.icc_profile is None and img8.alpha is None
    assert np.array_equal(_srgb8(img8.rgb), _srgb8(lin))


def test_tiff_float_and_gray16(tmp_path: Path) -> None:
    values = np.array([[[0.0, 0.5, 1.0], [1.5, -0.2, 0.25]]], dtype=np.float32)
    p = tmp_path / "f.tif"
    tifffile.imwrite(p, values, photometric="rgb")
    img = load_image(p)
    assert img.bit_depth == 16 and img.source_mode == "RGB;F"
    expected = srgb_to_linear(np.clip(values, 0, 1))  # float samples are encoded sRGB, clipped
    np.testing.assert_allclose(img.rgb, expected, atol=1e-6)
    assert any("clipped" in w for w in img.warnings)

    gray = np.array([[0, 1000, 40000, 65535]], dtype=np.uint16)
    pg = tmp_path / "g.tif"
    tifffile.imwrite(pg, gray, photometric="minisblack")
    img = load_image(pg)
    assert img.bit_depth == 16 and img.source_mode == "I;16" and img.rgb.shape == (1, 4, 3)
    np.testing.assert_allclose(img.rgb[..., 2], decode_to_linear(gray), atol=1e-7)


def test_tiff_wide_and_signed_integers(tmp_path: Path) -> None:
    """32-bit unsigned samples span their range; signed ones are read only as 16-bit data in a wider type.

    Before, both fell through to Pillow: a signed 16-bit RGB file was "not a recognised image, or the file
    is damaged", and 32-bit gray values past 65535 were clipped to a white frame ("no face found")."""
    top = np.iinfo(np.uint32).max
    pu = tmp_path / "u32.tif"
    tifffile.imwrite(pu, np.array([[[0, top // 2, top]]], dtype=np.uint32), photometric="rgb")
    img = load_image(pu, encoding="linear")
    np.testing.assert_allclose(img.rgb[0, 0], [0.0, 0.5, 1.0], atol=1e-6)

    ps = tmp_path / "i32.tif"
    tifffile.imwrite(ps, np.array([[0, 1000, 65535]], dtype=np.int32), photometric="minisblack")
    img = load_image(ps, encoding="linear")
    np.testing.assert_allclose(img.rgb[0, :, 0], [0.0, 1000 / 65535, 1.0], atol=1e-6)

    for name, values, kind in (("neg.tif", np.array([[[-100, 0, 155]]], dtype=np.int16), "rgb"),
                               ("big.tif", np.array([[0, 255000]], dtype=np.int32), "minisblack")):
        tifffile.imwrite(tmp_path / name, values, photometric=kind)
        with pytest.raises(InputError, match=r"signed (16|32)-bit integers from (-100 to 155|0 to 255000)"):
            load_image(tmp_path / name)


def test_jpeg_and_webp_save(tmp_path: Path) -> None:
    lin = decode_to_linear(_blocks())
    pj = tmp_path / "o.jpg"
    save_image(pj, lin, alpha=np.ones(lin.shape[:2], np.float32), icc_profile=SRGB_ICC, quality=95)
    img = load_image(pj)
    assert img.alpha is None and img.icc_profile == SRGB_ICC and img.bit_depth == 8
    centres = _srgb8(img.rgb)[BLOCK // 2 :: BLOCK, BLOCK // 2 :: BLOCK].astype(int)
    assert np.abs(centres - PALETTE).max() <= 6
    pw = tmp_path / "o.webp"
    save_image(pw, lin, quality=100)  # quality 100 = lossless WebP
    assert np.array_equal(_srgb8(load_image(pw).rgb), _blocks())
    with pytest.raises(InputError, match="8 bits"):
        save_image(tmp_path / "o16.jpg", lin, bit_depth=16)


# ---------------------------------------------------------------------------------------------------
# modes and orientation


def test_grayscale_and_bilevel_load_as_equal_channels(tmp_path: Path) -> None:
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    for mode, im in (("L", Image.fromarray(gray)), ("1", Image.fromarray(gray).convert("1"))):
        p = tmp_path / f"{mode}.png"
        im.save(p)
        img = load_image(p)
        assert img.source_mode == mode and img.bit_depth == 8 and img.rgb.shape == (8, 64, 3)
        assert np.array_equal(img.rgb[..., 0], img.rgb[..., 1]) and np.array_equal(img.rgb[..., 1], img.rgb[..., 2])
        if mode == "L":
            assert np.array_equal(_srgb8(img.rgb[..., 0]), gray)


def test_palette_with_transparency_gives_alpha(tmp_path: Path) -> None:
    im = Image.new("P", (4, 2))
    im.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    im.putdata([0, 1, 0, 1, 1, 1, 0, 0])
    p = tmp_path / "pal.png"
    im.save(p, transparency=1)
    img = load_image(p)
    assert img.source_mode == "P" and img.alpha is not None
    assert img.alpha.tolist() == [[1, 0, 1, 0], [0, 0, 1, 1]]
    assert _srgb8(img.rgb)[0, 0].tolist() == [255, 0, 0]
    im.save(tmp_path / "pal_opaque.png")
    assert load_image(tmp_path / "pal_opaque.png").alpha is None


def test_cmyk_jpeg_loads_as_rgb_with_warning(tmp_path: Path) -> None:
    im = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # pure red ink-wise
    p = tmp_path / "cmyk.jpg"
    im.save(p, quality=95)
    img = load_image(p)
    assert img.source_mode == "CMYK" and img.icc_profile is None and img.rgb.shape == (16, 32, 3)
    assert any("converted from CMYK" in w for w in img.warnings)
    assert np.abs(_srgb8(img.rgb).astype(int) - [255, 0, 0]).max() <= 8

    # An unusable embedded profile falls back to Pillow's conversion, with a note.
    pb = tmp_path / "cmyk_badicc.jpg"
    im.save(pb, quality=95, icc_profile=b"not a real profile")
    img = load_image(pb)
    assert img.icc_profile is None and len(img.warnings) == 2
    assert np.abs(_srgb8(img.rgb).astype(int) - [255, 0, 0]).max() <= 8


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_orientation_jpeg_is_upright(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / f"o{orientation}.jpg"
    Image.fromarray(_blocks()).save(p, quality=95, subsampling=0, exif=exif)
    img = load_image(p)
    assert img.orientation_applied == orientation
    # Orientation 6 means "rotate 90° clockwise to view", 8 counter-clockwise, 3 by 180°.
    k = {3: 2, 6: -1, 8: 1}[orientation]
    expected = np.rot90(PALETTE, k)
    got = _srgb8(img.rgb)
    assert got.shape[:2] == (expected.shape[0] * BLOCK, expected.shape[1] * BLOCK)
    centres = got[BLOCK // 2 :: BLOCK, BLOCK // 2 :: BLOCK].astype(int)
    assert np.abs(centres - expected).max() <= 6
    with Image.open(p) as ref:  # and exactly what Pillow's own transpose gives
        assert np.array_equal(got, np.asarray(ImageOps.exif_transpose(ref).convert("RGB")))
    w, h = Image.fromarray(_blocks()).size
    assert image_info(p)[:2] == ((h, w) if orientation in (6, 8) else (w, h))


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path: Path, orientation: int) -> None:
    rgb = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.png"
    Image.fromarray(rgb).save(p, exif=exif)
    with Image.open(p) as ref:
        expected = np.asarray(ImageOps.exif_transpose(ref).convert("RGB"))
    img = load_image(p)
    assert img.orientation_applied == orientation
    assert np.array_equal(_srgb8(img.rgb), expected)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "I;16"])
def test_every_orientation_of_gray_alpha_and_16_bit_matches_pillow(tmp_path: Path, orientation: int,
                                                                   mode: str) -> None:
    rng = np.random.default_rng(orientation)
    channels = {"L": 1, "LA": 2, "RGBA": 4, "I;16": 1}[mode]
    if mode == "I;16":
        px = rng.integers(0, 65536, (5, 7), dtype=np.uint16)
        im = Image.fromarray(px)
    else:
        px = rng.integers(0, 256, (5, 7, channels), dtype=np.uint8)
        im = Image.fromarray(px[..., 0] if channels == 1 else px, mode=mode)
    exif = Image.Exif()
    exif[0x0112] = orientation
    p = tmp_path / "o.png"
    im.save(p, exif=exif)
    with Image.open(p) as ref:
        upright = ImageOps.exif_transpose(ref)
        expected_alpha = np.asarray(upright.getchannel("A")) if "A" in mode else None
        values = np.asarray(upright) if mode == "I;16" else np.asarray(upright.convert("RGB"))
    img = load_image(p)
    assert img.orientation_applied == orientation
    if mode == "I;16":
        np.testing.assert_allclose(img.rgb[..., 0], decode_to_linear(values.astype(np.uint16)), atol=1e-6)
    else:
        assert np.array_equal(_srgb8(img.rgb), values)
    if expected_alpha is not None:
        assert img.alpha is not None
        np.testing.assert_allclose(img.alpha, expected_alpha / 255.0, atol=1e-6)


def test_tiff_orientation_tag_applied(tmp_path: Path) -> None:
    p = tmp_path / "rot.tif"
    tifffile.imwrite(p, _blocks(), photometric="rgb", extratags=[(274, 3, 1, 6, True)])
    img = load_image(p)
    assert img.orientation_applied == 6
    assert np.array_equal(_srgb8(img.rgb), np.rot90(_blocks(), -1))
    assert image_info(p) == (48, 64, "RGB")


# ---------------------------------------------------------------------------------------------------
# bad input: InputError and nothing else


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    good_png = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(8).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(good_png)
    good_jpg = tmp_path / "good.jpg"
    Image.fromarray(_blocks()).save(good_jpg, quality=90)
    ok, buf = cv2.imencode(".png", np.random.default_rng(9).integers(0, 65535, (64, 64, 3), dtype=np.uint16))
    assert ok
    files = {
        "empty": tmp_path / "empty.png",
        "text": tmp_path / "notes.png",
        "random": tmp_path / "random.png",
        "truncated_png": tmp_path / "trunc.png",
        "truncated_png16": tmp_path / "trunc16.png",
        "truncated_jpg": tmp_path / "trunc.jpg",
        "missing": tmp_path / "missing.png",
        "directory": tmp_path / "folder.png",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is not an image\n" * 10)
    files["random"].write_bytes(b"\x89PNG\r\n\x1a\n" + np.random.default_rng(10).bytes(4096))
    files["truncated_png"].write_bytes(good_png.read_bytes()[: good_png.stat().st_size // 2])
    files["truncated_png16"].write_bytes(buf.tobytes()[: len(buf) // 2])
    files["truncated_jpg"].write_bytes(good_jpg.read_bytes()[: good_jpg.stat().st_size // 2])
    files["directory"].mkdir()
    return files


@pytest.mark.parametrize(
    "case",
    ["empty", "text", "random", "truncated_png", "truncated_png16", "truncated_jpg", "missing", "directory"],
)
def test_bad_files_raise_input_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path = _bad_files(tmp_path)[case]
    with pytest.raises(InputError) as info:
        load_image(path)
    assert type(info.value) is InputError
    message = str(info.value)
    assert path.name in message and "\n" not in message
    if case in ("empty", "text", "random", "missing", "directory"):  # header-level failures
        with pytest.raises(InputError):
            image_info(path)


@pytest.mark.parametrize(
    ("head", "kind"),
    [(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "HEIC"), (b"\x00\x00\x00\x18ftypmif1", "HEIF"),
     (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01", "Canon CR3 raw"), (b"FUJIFILMCCD-RAW 0201", "Fujifilm RAF raw"),
     (b"%PDF-1.7\n", "PDF"), (b"\xef\xbb\xbf<?xml version='1.0'?><svg/>", "SVG")],
)
def test_known_unsupported_formats_are_named(tmp_path: Path, head: bytes, kind: str) -> None:
    """An iPhone's HEIC photo said "not a recognised image, or the file is damaged": it is neither."""
    p = tmp_path / "photo.bin"
    p.write_bytes(head + bytes(200))
    for read in (load_image, image_info):
        with pytest.raises(InputError, match=f"{kind}.* not supported; export it as JPEG, PNG or TIFF"):
            read(p)


def test_damaged_exif_is_one_note_not_a_python_warning(tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    """Pillow reads a JPEG's EXIF while opening it and complains about a damaged block with a Python
    warning, which the CLI printed raw; the photo loads as stored, with one note saying why."""
    p = tmp_path / "bad_exif.jpg"
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00"
    Image.fromarray(_blocks()).save(p, exif=broken, quality=95)
    img = load_image(p)
    assert img.rgb.shape[:2] == _blocks().shape[:2]  # as stored
    assert img.warnings.count(imaging_io.EXIF_DAMAGED) == 1
    assert image_info(p)[:2] == (_blocks().shape[1], _blocks().shape[0])
    assert not [w for w in recwarn if "EXIF" in str(w.message)]


def test_loads_on_many_threads_leave_python_warnings_as_they_were(tmp_path: Path) -> None:
    """Recording Pillow's warnings swaps process-wide state; interleaved on the app's job threads, the
    restores could leave one load's recorder installed, swallowing every later warning."""
    import threading
    import warnings

    p = tmp_path / "bad_exif.jpg"
    broken = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x09\x00\x00"
    Image.fromarray(_blocks()).save(p, exif=broken)
    filters, show = list(warnings.filters), warnings.showwarning
    notes: list[list[str]] = []

    def work() -> None:
        for _ in range(15):
            notes.append(load_image(p).warnings)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(notes) == 90 and all(n.count(imaging_io.EXIF_DAMAGED) == 1 for n in notes)
    assert warnings.showwarning is show and warnings.filters == filters
    with pytest.warns(UserWarning, match="still heard"):
        warnings.warn("still heard", UserWarning, stacklevel=1)


@pytest.mark.parametrize(("bit_depth", "color_type"), [(1, 0), (8, 2), (16, 2)])
def test_huge_image_refused_from_header(tmp_path: Path, bit_depth: int, color_type: int) -> None:
    p = tmp_path / "huge.png"
    _write_raw_png(p, 20000, 20000, bit_depth, color_type, zlib.compress(b"\x00" * 64))
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as info:
            load_image(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # refused from the header: its 400 MP were never allocated
    message = str(info.value)
    assert "huge.png" in message and "20000×20000" in message and "limit" in message
    assert image_info(p)[:2] == (20000, 20000)  # the header alone is still readable


def test_max_pixels_parameter(tmp_path: Path) -> None:
    p = tmp_path / "small.png"
    Image.new("RGB", (20, 10)).save(p)
    assert load_image(p, max_pixels=200).size == (20, 10)
    with pytest.raises(InputError, match="199 pixels"):
        load_image(p, max_pixels=199)
