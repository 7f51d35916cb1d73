"""A photo's colour profile as the canvas shows it on an sRGB screen (imaging/display_profile.py).

The reference is LittleCMS (Pillow's ImageCms); the profiles are the ones Qt writes for the named colour
spaces photographers' files carry.
"""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageCms
from PySide6.QtGui import QColorSpace

from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.imaging.display_profile import display_transform, profile_name
from icportrait_studio.imaging.icc_profile import read_tags, tone_curve


def _qt_profile(name: str) -> bytes:
    return bytes(QColorSpace(getattr(QColorSpace.NamedColorSpace, name)).iccProfile().data())


def _littlecms(icc: bytes, codes: np.ndarray) -> np.ndarray:
    t = ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(icc)), ImageCms.createProfile("sRGB"), "RGB", "RGB")
    return np.asarray(ImageCms.applyTransform(Image.fromarray(codes), t))


def _codes() -> np.ndarray:
    rng = np.random.default_rng(3)
    cube = np.stack(np.meshgrid(*[np.linspace(0, 255, 9).round()] * 3, indexing="ij"), -1).reshape(-1, 3)
    return np.concatenate([cube, rng.integers(0, 256, (1271, 3))]).astype(np.uint8).reshape(40, 50, 3)


@pytest.mark.parametrize("name", ["AdobeRgb", "ProPhotoRgb", "DisplayP3", "Bt2020"])
def test_wide_gamut_profiles_are_shown_as_littlecms_shows_them(name: str) -> None:
    icc = _qt_profile(name)
    t = display_transform(icc)
    assert t is not None
    codes = _codes()
    ours, ref = t.apply(codes), _littlecms(icc, codes)
    assert ours.shape == codes.shape and ours.dtype == np.uint8
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1
    assert np.abs(ours.astype(int) - codes.astype(int)).max() >= 20  # not sRGB: the screen must differ


def test_srgb_none_and_unreadable_profiles_show_the_codes_as_they_are() -> None:
    srgb_lcms = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    for icc in (None, b"", _qt_profile("SRgb"), srgb_lcms, b"garbage" * 40, _qt_profile("AdobeRgb")[:150]):
        assert display_transform(icc) is None
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    assert display_transform(lab) is None  # not a matrix-shaper RGB profile


def test_a_linear_photo_is_undone_with_srgbs_curve_not_its_profiles() -> None:
    """The canvas encodes a linear photo's values with sRGB's curve, so the transform must undo that curve
    and apply only the primaries' change."""
    icc = _qt_profile("AdobeRgb")
    lin = decode_to_linear(_codes())
    t = display_transform(icc, "linear")
    assert t is not None
    shown = t.apply(encode_from_linear(lin, 8))
    # Adobe RGB's linear values through its matrix, then sRGB-encoded, by LittleCMS from a linear profile
    # with the same primaries: build it by giving the photo's codes Adobe RGB's own curve first
    gamma = tone_curve(icc, read_tags(icc)[b"rTRC"])  # type: ignore[index]
    codes = np.interp(lin, gamma, np.linspace(0, 1, 256)) * 255
    ref = _littlecms(icc, np.clip(np.rint(codes), 0, 255).astype(np.uint8))
    assert np.abs(shown.astype(int) - ref.astype(int)).mean() < 1.0


D50_WHITE = b"XYZ \x00\x00\x00\x00" + struct.pack(">3i", 63190, 65536, 54061)


def _profile(device_class: bytes, space: bytes, tags: list[tuple[bytes, bytes]]) -> bytes:
    """A minimal ICC profile: a header, the tag table and the tags' bodies (each padded to 4 bytes)."""
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for sig, body in tags:
        table += struct.pack(">4sII", sig, offset + len(data), len(body))
        data += body + bytes(-len(body) % 4)
    header = struct.pack(">I4sI4s4s4s", offset + len(data), b"lcms", 0x02100000, device_class, space, b"XYZ ")
    header = header.ljust(36, b"\x00") + b"acsp" + bytes(128 - 40)
    return header + struct.pack(">I", len(tags)) + table + data


def _gray_profile(gamma_u8fixed8: int) -> bytes:
    """A minimal gray profile: a kTRC gamma curve and a white point."""
    curv = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, gamma_u8fixed8) + b"\x00\x00"
    return _profile(b"mntr", b"GRAY", [(b"kTRC", curv), (b"wtpt", D50_WHITE)])


def test_a_gray_profile_uses_its_own_curve() -> None:
    t = display_transform(_gray_profile(256))  # gamma 1.0: the codes are linear light
    assert t is not None
    codes = np.full((2, 2, 3), 128, np.uint8)
    assert np.all(t.apply(codes) == encode_from_linear(np.full((2, 2, 3), 128 / 255, np.float32), 8))
    assert display_transform(_gray_profile(563)) is not None  # gamma 2.2 is close to, not, sRGB's curve


def test_profile_names() -> None:
    assert profile_name(_qt_profile("AdobeRgb")) == "Adobe RGB"
    assert profile_name(None) is None and profile_name(b"garbage") is None


@pytest.mark.parametrize(("name", "srgb_curves"), [("DisplayP3", True), ("AdobeRgb", False), ("ProPhotoRgb", False)])
def test_from_linear_matches_the_codes_path(name: str, srgb_curves: bool) -> None:
    """The canvas hands decoded values over; with sRGB's curves (Display P3) the matrix applies to them
    directly, skipping a round trip through the codes: the same screen colours either way."""
    t = display_transform(_qt_profile(name))
    assert t is not None and t.srgb_curves is srgb_curves
    lin = decode_to_linear(_codes())
    direct, via_codes = t.from_linear(lin), t.apply(encode_from_linear(lin, 8))
    assert np.abs(direct.astype(int) - via_codes.astype(int)).max() <= 1


def test_damaged_profiles_never_raise_or_give_non_finite_pixels() -> None:
    """Bytes flipped and tails cut in real profiles: every colour path reads them as a profile or as
    none at all, with no exception, no numpy warning and no NaN or infinity in what it returns."""
    import warnings

    from icportrait_studio.imaging.profile_convert import as_srgb, convert_between, readable
    from icportrait_studio.imaging.scene_tone import scene_gamma

    bases = [_qt_profile(n) for n in ("AdobeRgb", "ProPhotoRgb", "DisplayP3")] + [_adobe_as_tables()[0]]
    rng = np.random.default_rng(11)
    held = rng.random((4, 4, 3)).astype(np.float32)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(1500):
            icc = bytearray(bases[i % len(bases)])
            for _ in range(int(rng.integers(1, 8))):
                icc[int(rng.integers(0, len(icc)))] = int(rng.integers(0, 256))
            if i % 5 == 0:
                icc = icc[: int(rng.integers(0, len(icc)))]
            data = bytes(icc)
            t = display_transform(data)
            outs = [] if t is None else [t.from_linear(held)]
            outs += [convert_between(held, data, None), convert_between(held, None, data),
                     as_srgb(held, data, "srgb")[0], as_srgb(held, data, "linear")[0]]
            readable(data), scene_gamma(data), profile_name(data)
            assert all(o is None or np.isfinite(np.asarray(o, np.float64)).all() for o in outs)
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


def _lut_profile(curve: np.ndarray, to_xyz: np.ndarray, grid: int = 9) -> bytes:
    """An RGB profile built from lookup tables (an A2B0 ``mft2``: per-channel input tables, a 3D table to
    XYZ, identity output tables), as some scanner and camera profiles are, describing the colour space
    whose tone curve is ``curve`` (256 samples, code -> light) and whose primaries are ``to_xyz``."""
    axis = np.linspace(0.0, 1.0, grid)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)  # red varies slowest
    clut = np.clip(np.round(rgb @ to_xyz.T * 32768), 0, 65535).astype(">u2")  # lut16 XYZ: 0x8000 = 1.0
    inputs = np.tile(np.clip(np.round(curve * 65535), 0, 65535).astype(">u2"), 3)
    outputs = np.tile(np.array([0, 65535], ">u2"), 3)
    mft2 = (b"mft2" + bytes(4) + struct.pack(">BBBB", 3, 3, grid, 0)
            + struct.pack(">9i", 65536, 0, 0, 0, 65536, 0, 0, 0, 65536) + struct.pack(">HH", len(curve), 2)
            + inputs.tobytes() + clut.tobytes() + outputs.tobytes())
    return _profile(b"scnr", b"RGB ", [(b"A2B0", mft2), (b"wtpt", D50_WHITE)])


def _adobe_as_tables() -> tuple[bytes, bytes]:
    from icportrait_studio.imaging.icc_profile import matrix_shaper

    adobe = _qt_profile("AdobeRgb")
    shaper = matrix_shaper(adobe, 256)
    assert shaper is not None and shaper.to_xyz is not None
    return _lut_profile(shaper.curves[0], shaper.to_xyz), adobe


def test_a_profile_built_from_tables_is_shown_through_littlecms() -> None:
    """Adobe RGB written as lookup tables is shown as Adobe RGB written as a matrix shaper is."""
    tables, adobe = _adobe_as_tables()
    t, m = display_transform(tables), display_transform(adobe)
    assert t is not None and m is not None and type(t) is not type(m)
    codes = _codes()
    ours = t.apply(codes)
    assert ours.shape == codes.shape and ours.dtype == np.uint8
    diff = np.abs(ours.astype(int) - m.apply(codes).astype(int)).max(axis=-1)
    # LittleCMS samples a table pipeline into a 3D grid: exact inside the gamut, a few codes off where
    # the clip to sRGB bends it (a channel at 0 or 255)
    assert diff.mean() < 0.3 and np.percentile(diff, 98) <= 1
    assert np.abs(ours.astype(int) - codes.astype(int)).max() >= 20  # not shown as raw codes any more
    lin = decode_to_linear(codes)
    assert np.array_equal(t.from_linear(lin), t.apply(encode_from_linear(lin, 8)))
    assert display_transform(tables, "linear") is None  # a linear photo's codes are not the table's


def test_a_table_transform_is_safe_on_two_render_threads() -> None:
    from concurrent.futures import ThreadPoolExecutor

    t = display_transform(_adobe_as_tables()[0])
    assert t is not None
    frames = [np.random.default_rng(k).integers(0, 256, (300, 200, 3), dtype=np.uint8) for k in range(8)]
    serial = [t.apply(f) for f in frames]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(t.apply, frames * 3))
    assert all(np.array_equal(p, serial[i % 8]) for i, p in enumerate(parallel))
