"""Input encodings: sRGB-encoded vs linear-light files (gAMA / ICC detection, exact linear round trips)."""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms

from icportrait_studio.cli import INPUT_ENCODINGS, main
from icportrait_studio.errors import InputError
from icportrait_studio.imaging import decode_to_linear, encode_from_linear, linear_to_srgb, load_image, save_image
from icportrait_studio.imaging.encoding import (
    ENCODINGS,
    from_linear,
    icc_is_linear,
    resolve_encoding,
    to_linear,
)

SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


# ---------------------------------------------------------------------------------------------------
# Hand-made ICC profiles and PNG chunks


def _curv(*entries: int) -> bytes:
    """``curv`` tag: no entries = identity, one = u8Fixed8 gamma, more = a sampled table."""
    return b"curv\x00\x00\x00\x00" + struct.pack(">I", len(entries)) + b"".join(struct.pack(">H", e) for e in entries)


def _para(function: int, gamma: float, *params: float) -> bytes:
    values = (gamma, *params)
    body = b"".join(struct.pack(">i", round(v * 65536)) for v in values)
    return b"para\x00\x00\x00\x00" + struct.pack(">HH", function, 0) + body


def _icc(tags: dict[bytes, bytes]) -> bytes:
    """A minimal ICC profile: 128-byte header ('acsp' at 36), tag count, 12-byte entries, tag data."""
    table_end = 128 + 4 + 12 * len(tags)
    entries, data = b"", b""
    for sig, payload in tags.items():
        payload += b"\x00" * (-len(payload) % 4)
        entries += struct.pack(">4sII", sig, table_end + len(data), len(payload))
        data += payload
    size = table_end + len(data)
    header = bytearray(128)
    header[0:4] = struct.pack(">I", size)
    header[12:20] = b"mntrRGB "
    header[20:24] = b"XYZ "
    header[36:40] = b"acsp"
    return bytes(header) + struct.pack(">I", len(tags)) + entries + data


def _rgb_icc(curve: bytes) -> bytes:
    return _icc({b"rTRC": curve, b"gTRC": curve, b"bTRC": curve})


def _with_gama(png: bytes, gamma_times_100000: int) -> bytes:
    """Insert a gAMA chunk right after IHDR (Pillow does not write one)."""
    assert png[12:16] == b"IHDR"
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    body = struct.pack(">I", gamma_times_100000)
    chunk = struct.pack(">I", 4) + b"gAMA" + body + struct.pack(">I", zlib.crc32(b"gAMA" + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def _gradient() -> np.ndarray:
    """64x256 RGB uint8: every code appears in each channel."""
    ramp = np.arange(256, dtype=np.uint8)
    return np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[::-1], (64, 1)), np.full((64, 256), 77, np.uint8)], -1)


def _png_bytes(arr: np.ndarray, **params: object) -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", **params)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------
# icc_is_linear / resolve_encoding


@pytest.mark.parametrize("curve", [_curv(), _curv(256), _curv(257), _para(0, 1.0), _curv(0, 65535),
                                   _curv(*np.linspace(0, 65535, 256).round().astype(int).tolist())])
def test_linear_icc_curves_are_recognised(curve: bytes) -> None:
    assert icc_is_linear(_rgb_icc(curve))
    assert icc_is_linear(_icc({b"kTRC": curve, b"desc": b"desc\x00\x00\x00\x00"}))


@pytest.mark.parametrize("curve", [_curv(563), _para(0, 2.2), _curv(0, 20000, 65535),
                                   _para(3, 2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045),  # sRGB's own
                                   b"XYZ \x00\x00\x00\x00" + b"\x00" * 12])
def test_non_linear_icc_curves_are_not(curve: bytes) -> None:
    assert not icc_is_linear(_rgb_icc(curve))


def test_icc_needs_all_three_rgb_curves_linear() -> None:
    assert not icc_is_linear(_icc({b"rTRC": _curv(), b"gTRC": _curv(), b"bTRC": _curv(563)}))
    assert not icc_is_linear(_icc({b"rTRC": _curv(), b"gTRC": _curv()}))  # bTRC missing


def test_real_srgb_profile_and_garbage_are_not_linear() -> None:
    assert not icc_is_linear(SRGB_ICC)
    for junk in (None, b"", b"\x00" * 10, b"\xff" * 200, b"acsp" * 100, SRGB_ICC[:140],
                 _rgb_icc(_curv())[:-8]):  # cut inside the tag data
        assert icc_is_linear(junk) is False
    # a tag table that claims 2**32-1 tags, and a tag offset far past the end
    bad = bytearray(_rgb_icc(_curv()))
    bad[128:132] = b"\xff\xff\xff\xff"
    assert icc_is_linear(bytes(bad)) is False
    bad = bytearray(_rgb_icc(_curv()))
    bad[136:140] = struct.pack(">I", 10**9)
    assert icc_is_linear(bytes(bad)) is False


def test_resolve_encoding() -> None:
    lin_icc = _rgb_icc(_curv())
    assert resolve_encoding("srgb", icc=lin_icc, png_gamma=1.0) == "srgb"
    assert resolve_encoding("linear", icc=SRGB_ICC, png_gamma=0.45455) == "linear"
    assert resolve_encoding("auto", icc=None, png_gamma=None) == "srgb"
    assert resolve_encoding("auto", icc=None, png_gamma=0.45455) == "srgb"
    assert resolve_encoding("auto", icc=None, png_gamma=1.0) == "linear"
    assert resolve_encoding("auto", icc=None, png_gamma=1.01) == "linear"
    assert resolve_encoding("auto", icc=lin_icc, png_gamma=None) == "linear"
    assert resolve_encoding("auto", icc=b"garbage", png_gamma=1.0) == "linear"  # unreadable ICC: gAMA decides
    assert resolve_encoding("auto", icc=SRGB_ICC, png_gamma=1.0) == "srgb"  # a readable ICC wins over gAMA
    with pytest.raises(InputError, match="auto, srgb, linear"):
        resolve_encoding("gamma22", icc=None, png_gamma=None)


def test_cli_choices_match_the_module() -> None:
    assert INPUT_ENCODINGS == ENCODINGS


# ---------------------------------------------------------------------------------------------------
# to_linear / from_linear


def test_linear_round_trip_is_exact_for_every_code() -> None:
    c8 = np.arange(256, dtype=np.uint8)
    lin8 = to_linear(c8, "linear")
    assert lin8.dtype == np.float32 and lin8.shape == (256,)
    np.testing.assert_allclose(lin8, c8 / 255.0, atol=1e-7)
    assert np.array_equal(from_linear(lin8, "linear", 8), c8)
    img8 = np.broadcast_to(c8[None, :, None], (3, 256, 3)).copy()  # image-shaped (cv2.LUT) path
    assert np.array_equal(from_linear(to_linear(img8, "linear"), "linear", 8), img8)

    c16 = np.arange(65536, dtype=np.uint16).reshape(128, 512)
    lin16 = to_linear(c16, "linear")
    assert lin16.dtype == np.float32 and lin16.shape == c16.shape
    np.testing.assert_allclose(lin16, c16 / 65535.0, atol=1e-7)
    assert np.array_equal(from_linear(lin16, "linear", 16), c16)
    img16 = c16.reshape(128, 128, 4)[..., :3].copy()
    out16 = from_linear(to_linear(img16, "linear"), "linear", 16)
    assert out16.dtype == np.uint16 and np.array_equal(out16, img16)


def test_linear_mode_is_not_the_srgb_curve() -> None:
    c = np.array([0, 64, 128, 255], dtype=np.uint8)
    assert to_linear(c, "linear")[2] == pytest.approx(128 / 255)
    assert to_linear(c, "srgb")[2] == pytest.approx(0.2158, abs=1e-3)
    np.testing.assert_array_equal(to_linear(c, "srgb"), decode_to_linear(c))
    lin = np.linspace(0, 1, 11, dtype=np.float32)
    np.testing.assert_array_equal(from_linear(lin, "srgb", 8), encode_from_linear(lin, 8))


def test_linear_clips_floats_and_non_finite_values() -> None:
    f = np.array([-0.5, np.nan, 0.25, 1.5, np.inf, -np.inf], dtype=np.float64)
    assert to_linear(f, "linear").tolist() == [0.0, 0.0, 0.25, 1.0, 1.0, 0.0]
    assert to_linear(f, "linear").dtype == np.float32
    lin = np.array([-1.0, np.nan, np.inf, -np.inf, 0.0, 0.5, 1.0, 2.0], dtype=np.float32)
    assert from_linear(lin, "linear", 8).tolist() == [0, 0, 255, 0, 0, 128, 255, 255]
    assert from_linear(lin, "linear", 16).tolist() == [0, 0, 65535, 0, 0, 32768, 65535, 65535]
    with pytest.raises(ValueError):
        from_linear(lin, "linear", 12)
    with pytest.raises(ValueError):
        to_linear(lin, "auto")  # must be resolved first


# ---------------------------------------------------------------------------------------------------
# load_image / save_image


def test_png_with_gama_1_loads_as_linear_under_auto(tmp_path: Path) -> None:
    arr = _gradient()
    p = tmp_path / "linear.png"
    p.write_bytes(_with_gama(_png_bytes(arr), 100000))
    with Image.open(p) as im:
        assert im.info["gamma"] == pytest.approx(1.0)  # the file really carries gAMA 1.0

    auto = load_image(p)
    assert auto.encoding == "linear"
    np.testing.assert_allclose(auto.rgb, arr / 255.0, atol=1e-7)
    assert any("linear light" in w and "gAMA" in w for w in auto.warnings)

    forced = load_image(p, encoding="srgb")
    assert forced.encoding == "srgb"
    np.testing.assert_array_equal(forced.rgb, decode_to_linear(arr))
    assert not any("linear light" in w for w in forced.warnings)

    explicit = load_image(p, encoding="linear")
    np.testing.assert_array_equal(explicit.rgb, auto.rgb)
    assert not any("linear light" in w for w in explicit.warnings)  # asked for: nothing to warn about


def test_png_with_srgb_like_gama_stays_srgb(tmp_path: Path) -> None:
    arr = _gradient()
    p = tmp_path / "srgb.png"
    p.write_bytes(_with_gama(_png_bytes(arr), 45455))
    img = load_image(p)
    assert img.encoding == "srgb" and not img.warnings
    np.testing.assert_array_equal(img.rgb, decode_to_linear(arr))


def test_16bit_png_and_gray_with_gama_1(tmp_path: Path) -> None:
    arr16 = (np.arange(64 * 64 * 3, dtype=np.uint32).reshape(64, 64, 3) * 5 % 65536).astype(np.uint16)
    p16 = tmp_path / "deep.png"
    save_image(p16, arr16 / np.float32(65535), bit_depth=16, encoding="linear")  # written with gAMA 1.0
    img = load_image(p16)
    assert img.encoding == "linear" and img.bit_depth == 16
    np.testing.assert_allclose(img.rgb, arr16 / 65535.0, atol=1e-7)

    gray = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    pg = tmp_path / "gray.png"
    pg.write_bytes(_with_gama(_png_bytes(gray), 100000))
    g = load_image(pg)
    assert g.encoding == "linear"
    np.testing.assert_allclose(g.rgb, np.repeat(gray[..., None], 3, axis=2) / 255.0, atol=1e-7)


def test_linear_icc_in_tiff_is_detected(tmp_path: Path) -> None:
    arr = _gradient()
    p = tmp_path / "lin.tif"
    icc = _rgb_icc(_para(0, 1.0))
    tifffile.imwrite(p, arr, photometric="rgb", extratags=[(34675, 7, len(icc), icc, True)])
    img = load_image(p)
    assert img.encoding == "linear" and img.icc_profile == icc
    assert any("ICC" in w for w in img.warnings)
    np.testing.assert_allclose(img.rgb, arr / 255.0, atol=1e-7)


def test_linear_save_round_trip_and_gama_chunk(tmp_path: Path) -> None:
    arr = _gradient()
    p = tmp_path / "in.png"
    p.write_bytes(_png_bytes(arr))
    img = load_image(p, encoding="linear")
    out = tmp_path / "out.png"
    save_image(out, img.rgb, encoding=img.encoding)
    with Image.open(out) as im:
        assert np.array_equal(np.asarray(im), arr)  # same codes, no sRGB curve applied on the way out
        assert im.info.get("gamma") == pytest.approx(1.0)
    assert load_image(out).encoding == "linear"
    # With a profile, the profile describes the file: no gAMA chunk is added.
    out_icc = tmp_path / "icc.png"
    save_image(out_icc, img.rgb, encoding="linear", icc_profile=SRGB_ICC)
    with Image.open(out_icc) as im:
        assert "gamma" not in im.info
    # sRGB saving (the default) is unchanged and has no gAMA chunk either.
    save_image(tmp_path / "s.png", img.rgb)
    with Image.open(tmp_path / "s.png") as im:
        assert "gamma" not in im.info
        assert np.array_equal(np.asarray(im), encode_from_linear(img.rgb, 8))
    save_image(tmp_path / "t.tif", img.rgb, encoding="linear")
    t = tifffile.imread(tmp_path / "t.tif")
    assert t.dtype == np.uint16 and np.array_equal(t, arr.astype(np.uint16) * 257)


def test_bad_encoding_values_are_input_errors(tmp_path: Path) -> None:
    p = tmp_path / "in.png"
    p.write_bytes(_png_bytes(_gradient()))
    with pytest.raises(InputError, match="auto, srgb, linear"):
        load_image(p, encoding="gamma")
    with pytest.raises(InputError, match="encoding"):
        save_image(tmp_path / "o.png", np.zeros((2, 2, 3), np.float32), encoding="auto")
    assert not (tmp_path / "o.png").exists()


# ---------------------------------------------------------------------------------------------------
# The CLI


@pytest.mark.slow
def test_cli_input_encoding_changes_the_result(tmp_path: Path, sample_path: Path, capsys) -> None:
    outs, reports = {}, {}
    for enc in ("srgb", "linear"):
        out, report = tmp_path / f"{enc}.png", tmp_path / f"{enc}.json"
        assert main(["relight", str(sample_path), "-o", str(out), "--light", "azimuth=40,elevation=10",
                     "--input-encoding", enc, "--report", str(report), "-q"]) == 0
        outs[enc] = np.asarray(Image.open(out).convert("RGB")).astype(np.float64)
        reports[enc] = json.loads(report.read_text())["images"][0]
    assert reports["srgb"]["encoding"] == "srgb" and reports["linear"]["encoding"] == "linear"
    assert outs["srgb"].shape == outs["linear"].shape
    assert abs(outs["srgb"].mean() - outs["linear"].mean()) > 2 or np.abs(outs["srgb"] - outs["linear"]).mean() > 2
    # A plain photo under the default (auto) is read as sRGB, exactly as before the option existed.
    assert main(["relight", str(sample_path), "-o", str(tmp_path / "auto.png"), "--light", "azimuth=40,elevation=10",
                 "-q", "--report", str(tmp_path / "auto.json")]) == 0
    assert json.loads((tmp_path / "auto.json").read_text())["images"][0]["encoding"] == "srgb"
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "auto.png").convert("RGB")), outs["srgb"])
    capsys.readouterr()


@pytest.mark.slow
def test_cli_auto_reads_gama_and_writes_linear(tmp_path: Path, sample_path: Path, capsys) -> None:
    src = tmp_path / "lin.png"
    src.write_bytes(_with_gama(_png_bytes(np.asarray(Image.open(sample_path).convert("RGB"))), 100000))
    out, report = tmp_path / "o.png", tmp_path / "r.json"
    assert main(["relight", str(src), "-o", str(out), "--light", "azimuth=40", "--report", str(report), "-q"]) == 0
    assert "linear light" in capsys.readouterr().err
    entry = json.loads(report.read_text())["images"][0]
    assert entry["encoding"] == "linear" and any("gAMA" in w for w in entry["warnings"])
    with Image.open(out) as im:
        assert im.info.get("gamma") == pytest.approx(1.0)  # linear in, linear out, and the file says so


def test_cli_rejects_an_unknown_input_encoding(tmp_path: Path, sample_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["relight", str(sample_path), "-o", str(tmp_path / "o.png"), "--light", "azimuth=10",
              "--input-encoding", "gamma22"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--input-encoding" in err and "invalid choice" in err
    assert not (tmp_path / "o.png").exists()


def test_layered_export_of_a_linear_photo_does_not_embed_its_linear_profile(tmp_path: Path, sample_path: Path,
                                                                            capsys) -> None:
    """The layers are written sRGB-encoded: the photo's linear profile would mislabel them."""
    arr = np.asarray(Image.open(sample_path).convert("RGB"))
    src = tmp_path / "lin.tif"
    icc = _rgb_icc(_para(0, 1.0))
    tifffile.imwrite(src, arr, photometric="rgb", extratags=[(34675, 7, len(icc), icc, True)])
    out = tmp_path / "layers.tif"
    assert main(["export", str(src), "-o", str(out), "--preset", "loop", "-q"]) == 0
    with tifffile.TiffFile(out) as tf:
        tag = tf.pages[0].tags.get(34675)
        assert tag is None or bytes(tag.value) != icc
    srgb_src = tmp_path / "srgb.tif"
    tifffile.imwrite(srgb_src, arr, photometric="rgb", extratags=[(34675, 7, len(_rgb_icc(_para(0, 2.2))),
                                                                    _rgb_icc(_para(0, 2.2)), True)])
    out2 = tmp_path / "layers2.tif"
    assert main(["export", str(srgb_src), "-o", str(out2), "--preset", "loop", "-q"]) == 0
    with tifffile.TiffFile(out2) as tf:  # a non-linear profile is kept, as before
        assert bytes(tf.pages[0].tags[34675].value) == _rgb_icc(_para(0, 2.2))


@pytest.mark.slow
def test_view_and_export_read_a_linear_capture_when_told(tmp_path: Path, sample_path: Path, capsys) -> None:
    """Every command that lights a photo takes ``--input-encoding``: a linear capture without metadata turned
    and relit by `view`, or relit into layers by `export`, is read as linear light when the user says so."""
    light = ["--light", "azimuth=40,elevation=10"]
    views = {}
    for enc in ("auto", "linear"):
        out, report = tmp_path / f"view_{enc}.png", tmp_path / f"view_{enc}.json"
        assert main(["view", str(sample_path), "-o", str(out), "--yaw", "10", *light, "--input-encoding", enc,
                     "--report", str(report), "-q"]) == 0
        assert json.loads(report.read_text())["encoding"] == ("srgb" if enc == "auto" else "linear")
        with Image.open(out) as im:
            assert (im.info.get("gamma") == pytest.approx(1.0)) is (enc == "linear")  # written as it was read
            views[enc] = np.asarray(im.convert("RGB")).astype(np.float64)
    assert np.abs(views["auto"] - views["linear"]).mean() > 1
    layers = {}
    for enc in ("auto", "linear"):
        out = tmp_path / f"layers_{enc}.ora"
        assert main(["export", str(sample_path), "-o", str(out), *light, "--input-encoding", enc, "-q"]) == 0
        with zipfile.ZipFile(out) as z:  # OpenRaster: data/layer000.png is the Original, 001 the Relit
            layers[enc] = [np.asarray(Image.open(io.BytesIO(z.read(f"data/layer00{i}.png"))).convert("RGB")) / 255.0
                           for i in (0, 1)]
    # layers are written sRGB-encoded: read as linear, the photo's codes are light, so its Original layer holds
    # their sRGB encoding; read as sRGB (auto, no metadata), the codes themselves
    codes = np.asarray(Image.open(sample_path).convert("RGB")) / 255.0
    np.testing.assert_allclose(layers["auto"][0], codes, atol=2 / 255)
    np.testing.assert_allclose(layers["linear"][0], linear_to_srgb(codes), atol=2 / 255)
    assert np.abs(layers["auto"][1] - layers["linear"][1]).mean() > 0.01  # and the relit layers differ
    capsys.readouterr()
