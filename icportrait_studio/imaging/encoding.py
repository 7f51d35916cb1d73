"""How a file's pixel values map to light: sRGB-encoded (the usual photo) or already linear.

The relighting maths needs linear light. Ordinary photos store sRGB-encoded values and are decoded
with the sRGB curve, but machine-vision and scientific captures (the Yale face database, linear
TIFF/PNG renders) store linear values: decoding those with the sRGB curve darkens the mid-tones
and bends every shading gradient the relighter fits. ``"auto"`` trusts what the file says about
itself (a PNG gAMA chunk of 1.0, or an ICC profile whose tone curves are the identity) and falls
back to sRGB, which is what files without such metadata almost always are.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.errors import InputError
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.imaging.icc_profile import read_tags, tone_curve

__all__ = ["ENCODINGS", "from_linear", "icc_is_linear", "linear_reason", "resolve_encoding", "to_linear"]

ENCODINGS = ("auto", "srgb", "linear")

_GAMMA_TOL = 0.02  # a stored gamma this close to 1.0 is linear (u8Fixed8 and gAMA round to ~0.004)
_CURVE_TOL = 0.008  # a tone curve this close to the diagonal is linear (gamma 1.02 strays 0.0072 from it)
_LINEAR_U8_LUT = (np.arange(256, dtype=np.float64) / 255.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------------
# What the file says


def _trc_is_linear(icc: bytes, offset: int, size: int) -> bool:
    """One tone-curve tag that is the identity: ``curv`` with no entries, gamma 1.0, a straight ramp, or
    ``para`` with Y = X (read by ``icc_profile.tone_curve``; within _CURVE_TOL of the diagonal)."""
    curve = tone_curve(icc, (offset, size), 256)
    return curve is not None and bool(np.abs(curve - np.linspace(0.0, 1.0, 256)).max() <= _CURVE_TOL)


def _icc_linearity(icc: bytes | None) -> bool | None:
    """True/False when the profile's grey or RGB tone curves decide it; None when it says nothing usable."""
    tags = read_tags(icc) if icc else None
    if icc is None or tags is None:
        return None
    if b"kTRC" in tags:
        return _trc_is_linear(icc, *tags[b"kTRC"])
    rgb = (b"rTRC", b"gTRC", b"bTRC")
    if all(t in tags for t in rgb):
        return all(_trc_is_linear(icc, *tags[t]) for t in rgb)
    return None  # a LUT-based profile: no simple tone curve to read


def icc_is_linear(icc: bytes | None) -> bool:
    """Whether an ICC profile's tone curves (kTRC, or all of rTRC/gTRC/bTRC) are gamma 1.0.

    Parsed by hand from the tag table, not through LittleCMS: we only need the curve type and one
    number, and a damaged profile must simply count as "not linear" rather than raise.
    """
    try:
        return _icc_linearity(icc) is True
    except Exception:  # never let a hostile profile stop an image from loading
        return False


def linear_reason(icc: bytes | None, png_gamma: float | None) -> str | None:
    """Why ``"auto"`` would pick linear for a file with this metadata, or None when it would pick sRGB.

    An ICC profile whose curves can be read takes precedence over gAMA, as the PNG spec requires.
    """
    try:
        icc_says = _icc_linearity(icc)
    except Exception:
        icc_says = None
    if icc_says is not None:
        return "linear ICC profile" if icc_says else None
    if png_gamma is not None and abs(float(png_gamma) - 1.0) < _GAMMA_TOL:
        return "PNG gAMA 1.0"
    return None


def resolve_encoding(requested: str, *, icc: bytes | None, png_gamma: float | None) -> str:
    """The encoding to decode with: ``"srgb"``/``"linear"`` as asked, ``"auto"`` from the file's metadata.

    ``png_gamma`` is Pillow's ``im.info["gamma"]``: the stored gAMA value, 1.0 for linear files and
    0.45455 for sRGB-like ones.
    """
    if requested in ("srgb", "linear"):
        return requested
    if requested == "auto":
        return "linear" if linear_reason(icc, png_gamma) else "srgb"
    raise InputError(f"unknown input encoding {requested!r}: use one of {', '.join(ENCODINGS)}")


# ---------------------------------------------------------------------------------------------------
# Samples <-> linear light


def _check(encoding: str) -> None:
    if encoding not in ("srgb", "linear"):
        raise ValueError(f"encoding must be 'srgb' or 'linear' (resolve 'auto' first), got {encoding!r}")


def to_linear(arr: np.ndarray, encoding: str) -> np.ndarray:
    """File samples (uint8, uint16, or float in [0, 1]) -> linear float32 of the same shape.

    ``"linear"`` is a plain rescale (code / 255 or / 65535; floats are clipped, NaN becomes 0);
    ``"srgb"`` applies the sRGB decode curve.
    """
    _check(encoding)
    arr = np.asarray(arr)
    if encoding == "srgb":
        return decode_to_linear(arr)
    if arr.dtype == np.uint8:
        a = np.ascontiguousarray(arr)
        if a.size and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] <= 4)):
            return cv2.LUT(a, _LINEAR_U8_LUT).reshape(a.shape)  # SIMD, multi-threaded
        return np.take(_LINEAR_U8_LUT, a)
    if arr.dtype == np.uint16:
        if not arr.size:
            return np.zeros(arr.shape, dtype=np.float32)
        a = np.ascontiguousarray(arr)
        return cv2.multiply(_rows(a), 1.0 / 65535.0, dtype=cv2.CV_32F).reshape(a.shape)
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(arr.astype(np.float32, copy=True), nan=0.0, posinf=1.0, neginf=0.0)
        return np.clip(a, 0.0, 1.0, out=a)
    raise TypeError(f"to_linear expects uint8, uint16 or float data, got {arr.dtype}")


def from_linear(lin: np.ndarray, encoding: str, bit_depth: int) -> np.ndarray:
    """Linear float -> uint8 (bit_depth 8) or uint16 (16) file samples, same shape.

    ``"srgb"`` applies the sRGB encode curve; ``"linear"`` clips to [0, 1] (NaN becomes 0) and
    rounds ``value * 255`` (or 65535), so ``from_linear(to_linear(codes))`` returns the codes exactly.
    """
    _check(encoding)
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    if encoding == "srgb":
        return encode_from_linear(lin, bit_depth)
    src = np.ascontiguousarray(lin, dtype=np.float32)
    if not src.size:
        return np.zeros(src.shape, dtype=np.uint8 if bit_depth == 8 else np.uint16)
    top = float((1 << bit_depth) - 1)
    # min() first so +inf becomes white; cv2's saturating, round-to-nearest conversion then turns
    # negatives and NaN into 0.
    clipped = np.minimum(src, np.float32(1.0))
    return cv2.multiply(_rows(clipped), top, dtype=cv2.CV_8U if bit_depth == 8 else cv2.CV_16U).reshape(src.shape)


def _rows(a: np.ndarray) -> np.ndarray:
    """A contiguous array as a 2-D single-channel view (image rows), so cv2 neither reads the last
    axis as channels (a scalar would then scale only the first one) nor runs on a single thread."""
    return a.reshape(a.shape[0], -1) if a.ndim >= 2 and a.shape[0] else a.reshape(1, -1)
