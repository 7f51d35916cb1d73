"""Moving pixels from one colour profile into another's, for an image imported into a document.

A layer imported into a photo holds its own file's codes; shown and exported under the photo's
profile, an sRGB image placed into a ProPhoto RGB portrait came out garishly saturated (and a ProPhoto
one in an sRGB portrait dull). Photoshop converts what is placed into the document's profile; so do we,
for the matrix-shaper profiles photographers' files carry: the source's tone curves and primaries into
XYZ (D50), the destination's primaries and inverse curves out, relative colorimetric with the gamut
clipped. A file without a profile counts as sRGB. Values are handled as the app holds them (codes
through sRGB's curve) and go through tables of 65536 steps, as the 16-bit encode does, so 16-bit
layers keep their precision.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from icportrait_studio.imaging import littlecms
from icportrait_studio.imaging.color import (
    decode_to_linear,
    encode_from_linear,
    linear_to_srgb,
    lookup_unit,
    srgb_to_linear,
)
from icportrait_studio.imaging.icc_profile import matrix_shaper, srgb_icc

__all__ = ["as_srgb", "by_tables", "convert_between", "convert_layer", "readable"]

_STEPS = 65536


def readable(icc: bytes | None) -> bool:
    """Whether ``icc`` (None = sRGB) is a profile this module can convert from or to."""
    return icc is None or _safe_space(icc) is not None or by_tables(icc)


def by_tables(icc: bytes | None) -> bool:
    """Whether ``icc`` is an RGB profile built from lookup tables that LittleCMS reads: converted through
    LittleCMS on 8-bit codes (``imaging.littlecms``), not at the held values' full precision."""
    if not icc or _safe_space(icc) is not None:
        return False
    return littlecms.rgb_transform(bytes(icc), srgb_icc()) is not None


def convert_between(rgb: np.ndarray, src_icc: bytes | None, dst_icc: bytes | None) -> np.ndarray | None:
    """``rgb`` (HxWx3 float, held as the app holds it) in ``src_icc``'s colours -> the same colours in
    ``dst_icc``'s; None when there is nothing to do (the same profile) or a profile is not one this
    module reads (CMYK, Lab, damaged: the caller keeps the pixels and says so). A profile built from
    lookup tables goes through LittleCMS, on 8-bit codes (``by_tables``)."""
    if (src_icc or None) == (dst_icc or None):
        return None
    src = _srgb() if src_icc is None else _safe_space(src_icc)
    dst = _srgb() if dst_icc is None else _safe_space(dst_icc)
    if src is None or dst is None:
        return _through_littlecms(rgb, src_icc, dst_icc)
    matrix = np.linalg.solve(dst[1], src[1]).astype(np.float32)  # src linear -> XYZ -> dst linear
    linear = _per_channel(rgb, _to_linear(src[0]))
    moved = cv2.transform(np.ascontiguousarray(linear, dtype=np.float32), matrix)
    return _per_channel(moved, _from_linear(dst[0]))


def convert_layer(rgb: np.ndarray, src_icc: bytes | None, dst_icc: bytes | None, bit_depth: int
                  ) -> tuple[np.ndarray, str | None]:
    """A layer brought into a document (an imported file, a version saved by an external editor): its
    pixels in the document's colours, and a note for the user when that was not fully possible (a
    profile that could not be used, so the pixels are unchanged; a 16-bit file converted through a
    table-based profile at 8-bit precision). Both import paths word it the same way."""
    converted = convert_between(rgb, src_icc, dst_icc)
    if converted is None:  # the same profile, or one that could not be read (or written into)
        if (src_icc or None) == (dst_icc or None):
            return rgb, None
        return rgb, "its colour profile or the photo's could not be used: its colours were not converted"
    if bit_depth > 8 and (by_tables(src_icc) or by_tables(dst_icc)):
        return converted, "its colours were converted through a profile built from tables, at 8-bit precision"
    return converted, None


def _through_littlecms(rgb: np.ndarray, src_icc: bytes | None, dst_icc: bytes | None) -> np.ndarray | None:
    transform = littlecms.rgb_transform(bytes(src_icc or srgb_icc()), bytes(dst_icc or srgb_icc()))
    if transform is None:
        return None
    return decode_to_linear(littlecms.apply(transform, encode_from_linear(rgb, 8)))


def _per_channel(rgb: np.ndarray, tables: np.ndarray) -> np.ndarray:
    """Each channel through its own table of ``tables`` (3, n), or all three through one (1, n)."""
    if len(tables) == 1:
        return lookup_unit(rgb, tables[0])
    return np.stack([lookup_unit(rgb[..., c], tables[c]) for c in range(3)], axis=-1)


def _safe_space(icc: bytes) -> tuple[bytes, np.ndarray] | None:
    try:
        return _space(bytes(icc))
    except Exception:  # a damaged profile is one this module does not read, never a failed import
        return None


@functools.lru_cache(maxsize=8)
def _space(icc: bytes) -> tuple[bytes, np.ndarray] | None:
    """(the profile, its colorant matrix) for a matrix-shaper profile; a gray profile's gray is the
    neutral of any RGB space: sRGB's matrix carries it."""
    shaper = matrix_shaper(icc)
    if shaper is None:
        return None
    return icc, (_srgb()[1] if shaper.to_xyz is None else shaper.to_xyz)


@functools.cache
def _srgb() -> tuple[bytes, np.ndarray]:
    space = _space(srgb_icc())
    assert space is not None
    return space


def _curves(icc: bytes) -> np.ndarray:
    """The profile's tone curves at _STEPS codes, (1, _STEPS) when its three are one (every working
    space: one pass instead of three), else (3, _STEPS) (a camera's or a monitor's own profile)."""
    shaper = matrix_shaper(icc, _STEPS)
    assert shaper is not None  # ``_space`` has checked that it reads
    return shaper.curves[:1] if shaper.one_curve else shaper.curves


@functools.lru_cache(maxsize=8)
def _to_linear(icc: bytes) -> np.ndarray:
    """Tables over held values -> the profile's linear light, per curve."""
    codes = linear_to_srgb(np.linspace(0.0, 1.0, _STEPS))
    grid = np.linspace(0.0, 1.0, _STEPS)
    return np.stack([np.interp(codes, grid, curve) for curve in _curves(icc)]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _from_linear(icc: bytes) -> np.ndarray:
    """Tables over the profile's linear light -> held values (each curve inverted by interpolation)."""
    light = np.linspace(0.0, 1.0, _STEPS)
    grid = np.linspace(0.0, 1.0, _STEPS)
    # each curve made monotone, so it inverts
    return np.stack([srgb_to_linear(np.interp(light, np.maximum.accumulate(curve), grid)) for curve in _curves(icc)])


def as_srgb(rgb: np.ndarray, icc: bytes | None, encoding: str) -> tuple[np.ndarray, bytes, str | None]:
    """A photo as a web delivery wants it (Lightroom's "Color Space: sRGB" on export): its colours in
    sRGB, to be written sRGB-encoded with sRGB's profile embedded. Returns (values as the app holds
    them for an sRGB photo, sRGB's profile, a note when the photo's profile could not be read).

    ``encoding`` is how the photo was decoded: a linear photo's values already are light, in its
    profile's primaries (sRGB's without one), so only the primaries change.
    """
    srgb = srgb_icc()
    if not icc:
        return rgb, srgb, None
    unread = "the photo's colour profile could not be read: its colours were not converted to sRGB"
    if encoding == "linear":
        space = _safe_space(icc)
        if space is None:
            return rgb, srgb, unread
        matrix = np.linalg.solve(_srgb()[1], space[1]).astype(np.float32)
        return cv2.transform(np.ascontiguousarray(rgb, dtype=np.float32), matrix), srgb, None
    converted = convert_between(rgb, icc, None)
    if converted is not None:
        return converted, srgb, None
    return rgb, srgb, None if readable(icc) else unread
