"""sRGB <-> linear-light conversion.

The relighting maths works in linear light, files store sRGB-encoded integers. The exact piecewise
sRGB curve is available for float arrays; the integer paths (``decode_to_linear`` /
``encode_from_linear``) go through lookup tables because a 16-megapixel photo has ~48 million
samples and evaluating ``pow`` on each one takes seconds, while a table lookup takes tens of
milliseconds. Large arrays are processed in cache-sized chunks on a small thread pool (numpy and
OpenCV release the GIL), so no full-size float64 or index temporaries are ever allocated.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

__all__ = [
    "decode_to_linear",
    "encode_from_linear",
    "linear_to_srgb",
    "lookup_unit",
    "srgb_to_linear",
]

# Piecewise sRGB constants (IEC 61966-2-1).
_SRGB_KNEE = 0.04045
_LINEAR_KNEE = 0.0031308

# Linear values are quantised to this many levels before the encode table lookup. 4096 levels are
# fine enough that decode->encode of every 8-bit code is exact (the curve's steepest slope, 12.92,
# moves an 8-bit code by at most 0.8 per level), and 65536 levels cover 16-bit output.
_ENCODE_LEVELS = {8: 4096, 16: 65536}

_CHUNK = 1 << 18  # elements per work item: keeps the per-chunk temporaries inside L2 cache
_POOL: ThreadPoolExecutor | None = None


def srgb_to_linear(a: np.ndarray) -> np.ndarray:
    """Exact sRGB decode of float values (nominally in [0, 1]); returns a new float32 array."""
    a = np.asarray(a, dtype=np.float32)
    knee = np.float32(_SRGB_KNEE)
    # max() keeps pow() away from negative bases in the branch np.where then discards.
    high = ((np.maximum(a, knee) + np.float32(0.055)) / np.float32(1.055)) ** np.float32(2.4)
    return np.asarray(np.where(a > knee, high, a / np.float32(12.92)), dtype=np.float32)


def linear_to_srgb(a: np.ndarray) -> np.ndarray:
    """Exact sRGB encode of linear float values (nominally in [0, 1]); returns a new float32 array."""
    a = np.asarray(a, dtype=np.float32)
    knee = np.float32(_LINEAR_KNEE)
    high = np.float32(1.055) * np.maximum(a, knee) ** np.float32(1.0 / 2.4) - np.float32(0.055)
    return np.asarray(np.where(a > knee, high, a * np.float32(12.92)), dtype=np.float32)


def _srgb_to_linear_f64(x: np.ndarray) -> np.ndarray:
    """Table-building helper in float64: the tables are tiny, so spend the precision there."""
    return np.where(x <= _SRGB_KNEE, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb_f64(x: np.ndarray) -> np.ndarray:
    return np.where(x <= _LINEAR_KNEE, x * 12.92, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)


@functools.cache
def _decode_lut(levels: int) -> np.ndarray:
    """float32 table: integer code (0..levels-1) -> linear value."""
    lut = _srgb_to_linear_f64(np.arange(levels, dtype=np.float64) / (levels - 1)).astype(np.float32)
    lut.setflags(write=False)
    return lut


@functools.cache
def _encode_lut(bit_depth: int) -> np.ndarray:
    """Integer table: quantised linear level -> sRGB code at ``bit_depth`` bits."""
    levels = _ENCODE_LEVELS[bit_depth]
    top = (1 << bit_depth) - 1
    srgb = _linear_to_srgb_f64(np.arange(levels, dtype=np.float64) / (levels - 1))
    codes = np.clip(np.rint(srgb * top), 0, top)
    lut = codes.astype(np.uint8 if bit_depth == 8 else np.uint16)
    lut.setflags(write=False)
    return lut


def _pool() -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="icp-lut")
    return _POOL


def _run_chunked(src: np.ndarray, dst: np.ndarray, work: Callable[[np.ndarray, np.ndarray], None]) -> None:
    """Apply ``work(src_part, dst_part)`` over flat contiguous arrays, in parallel when it pays off."""
    n = src.size
    workers = min(8, os.cpu_count() or 1)
    if n <= 2 * _CHUNK or workers == 1:
        for s in range(0, n, _CHUNK):
            work(src[s : s + _CHUNK], dst[s : s + _CHUNK])
        return
    # One contiguous band per worker, walked chunk by chunk inside it.
    band = -(-n // workers)

    def run_band(start: int) -> None:
        stop = min(start + band, n)
        for s in range(start, stop, _CHUNK):
            e = min(s + _CHUNK, stop)
            work(src[s:e], dst[s:e])

    for fut in [_pool().submit(run_band, start) for start in range(0, n, band)]:
        fut.result()


def decode_to_linear(arr: np.ndarray) -> np.ndarray:
    """sRGB-encoded uint8/uint16 (or float in [0, 1]) array -> linear float32 array of the same shape.

    Integers go through a 256- or 65536-entry table; floats are clipped to [0, 1] and decoded with
    the exact curve (float files are taken to hold encoded values, like their integer siblings).
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        a = np.ascontiguousarray(arr)
        if a.size and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] <= 4)):
            # cv2.LUT: SIMD and multi-threaded; a float32 table gives a float32 result.
            return cv2.LUT(a, _decode_lut(256)).reshape(a.shape)
        return np.take(_decode_lut(256), a)
    if arr.dtype == np.uint16:
        a = np.ascontiguousarray(arr)
        out = np.empty(a.shape, dtype=np.float32)
        lut = _decode_lut(65536)
        _run_chunked(a.reshape(-1), out.reshape(-1), lambda s, d: np.take(lut, s, out=d, mode="clip"))
        return out
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(arr.astype(np.float32, copy=True), nan=0.0, posinf=1.0, neginf=0.0)
        np.clip(a, 0.0, 1.0, out=a)
        return srgb_to_linear(a)
    raise TypeError(f"decode_to_linear expects uint8, uint16 or float data, got {arr.dtype}")


def encode_from_linear(lin: np.ndarray, bit_depth: int = 8) -> np.ndarray:
    """Linear float array -> sRGB-encoded uint8 (bit_depth=8) or uint16 (bit_depth=16), same shape.

    Values are clipped to [0, 1] (NaN becomes 0), quantised to 4096 / 65536 levels and mapped
    through a table. Decoding then encoding any 8-bit code returns it exactly.
    """
    if bit_depth not in _ENCODE_LEVELS:
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    return lookup_unit(lin, _encode_lut(bit_depth))


def lookup_unit(a: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``table`` (n ≤ 65536 entries spanning [0, 1]) at each value of ``a``, same shape, table's dtype.

    Values are clipped to [0, 1] (NaN becomes 0) and quantised to the table's n steps; large arrays
    run in chunks on the pool. Any curve of one value (sRGB's encode, a profile's gamma) costs one pass.
    """
    src = np.ascontiguousarray(a, dtype=np.float32)
    out = np.empty(src.shape, dtype=table.dtype)
    scale = float(len(table) - 1)

    def work(s: np.ndarray, d: np.ndarray) -> None:
        # min() first so +inf and huge values become white; NaN survives min() and cv2's
        # saturating float->uint16 conversion (round to nearest) turns it, and negatives, into 0.
        clipped = np.minimum(s, np.float32(1.0))
        idx = cv2.multiply(clipped.reshape(1, -1), scale, dtype=cv2.CV_16U)
        np.take(table, idx.reshape(-1), out=d, mode="clip")

    if src.size:
        _run_chunked(src.reshape(-1), out.reshape(-1), work)
    return out
