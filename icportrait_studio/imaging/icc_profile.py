"""Reading the parts of an ICC profile that a matrix-shaper colour space is made of, by hand.

Photographers' files carry Adobe RGB (cameras), Display P3 (phones) or ProPhoto RGB (Lightroom) profiles:
each is three tone curves (``rTRC``/``gTRC``/``bTRC``, or ``kTRC`` for gray) and three colorants
(``rXYZ``/``gXYZ``/``bXYZ``, the primaries in the profile connection space, XYZ under D50). Parsed here
from the tag table rather than through LittleCMS, so that a damaged profile reads as "nothing usable"
(None) instead of raising, and the curves come out as lookup tables the display path applies with
OpenCV on any thread.
"""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

import numpy as np

__all__ = ["MatrixShaper", "color_space", "colorants", "matrix_shaper", "pure_gamma", "read_tags", "srgb_icc",
           "tone_curve"]

_HEADER = 128
_MAX_TAGS = 1000  # real profiles hold a few dozen tags; more means the table is garbage


def read_tags(icc: bytes | None) -> dict[bytes, tuple[int, int]] | None:
    """Tag signature -> (offset, size) from the profile's tag table, or None if it is not a profile."""
    if not icc or len(icc) < _HEADER + 4 or icc[36:40] != b"acsp":
        return None
    try:
        (n,) = struct.unpack_from(">I", icc, _HEADER)
        if n > _MAX_TAGS or _HEADER + 4 + 12 * n > len(icc):
            return None
        tags: dict[bytes, tuple[int, int]] = {}
        for i in range(n):
            sig, off, size = struct.unpack_from(">4sII", icc, _HEADER + 4 + 12 * i)
            if off + size <= len(icc):
                tags.setdefault(sig, (off, size))
        return tags
    except struct.error:
        return None


def color_space(icc: bytes) -> bytes:
    """The header's data colour space signature (b"RGB ", b"GRAY", b"CMYK", ...)."""
    return icc[16:20] if len(icc) >= 20 else b""


def tone_curve(icc: bytes, tag: tuple[int, int], samples: int = 256) -> np.ndarray | None:
    """A ``curv`` or ``para`` tone curve sampled at ``samples`` evenly spaced codes in [0, 1] (float64),
    or None for another type or a malformed one (a damaged gamma gives infinities, or light outside
    [0, 1.5]: read as no curve at all, never as a black or white picture)."""
    with np.errstate(all="ignore"):
        curve = _sampled(icc, tag, samples)
    if curve is None or not np.isfinite(curve).all() or curve.min() < -1e-3 or curve.max() > 1.5:
        return None
    return curve


def _sampled(icc: bytes, tag: tuple[int, int], samples: int) -> np.ndarray | None:
    offset, size = tag
    if size < 12:
        return None
    x = np.linspace(0.0, 1.0, samples)
    kind = icc[offset : offset + 4]
    try:
        if kind == b"curv":
            (count,) = struct.unpack_from(">I", icc, offset + 8)
            if count == 0:
                return x  # identity
            if 12 + 2 * count > size:
                return None
            if count == 1:
                (g,) = struct.unpack_from(">H", icc, offset + 12)  # u8Fixed8Number
                return x ** (g / 256.0)
            table = np.frombuffer(icc, dtype=">u2", count=count, offset=offset + 12).astype(np.float64) / 65535.0
            return np.interp(x, np.linspace(0.0, 1.0, count), table)
        if kind == b"para":
            (function,) = struct.unpack_from(">H", icc, offset + 8)
            n_params = {0: 1, 1: 3, 2: 4, 3: 5, 4: 7}.get(function)
            if n_params is None or 12 + 4 * n_params > size:
                return None
            p = [v / 65536.0 for v in struct.unpack_from(f">{n_params}i", icc, offset + 12)]
            return _parametric(x, function, p)
    except (struct.error, ValueError, ZeroDivisionError, FloatingPointError):
        return None
    return None


def _parametric(x: np.ndarray, function: int, p: list[float]) -> np.ndarray:
    """ICC parametric curve types 0-4 (parameters g, a, b, c, d, e, f)."""
    g = p[0]
    if function == 0:
        return x**g
    a, b = p[1], p[2]
    if function in (1, 2):
        offset = 0.0 if function == 1 else p[3]
        edge = -b / a
        return np.where(x >= edge, np.maximum(a * x + b, 0.0) ** g + offset, offset)
    c, d = p[3], p[4]
    e, f = (p[5], p[6]) if function == 4 else (0.0, 0.0)
    return np.where(x >= d, np.maximum(a * x + b, 0.0) ** g + e, c * x + f)


def colorants(icc: bytes, tags: dict[bytes, tuple[int, int]]) -> np.ndarray | None:
    """3×3 matrix whose columns are the red, green and blue colorants (XYZ, D50), or None."""
    cols = []
    for sig in (b"rXYZ", b"gXYZ", b"bXYZ"):
        if sig not in tags:
            return None
        off, size = tags[sig]
        if size < 20 or icc[off : off + 4] != b"XYZ ":
            return None
        cols.append([v / 65536.0 for v in struct.unpack_from(">3i", icc, off + 8)])
    m = np.array(cols, dtype=np.float64).T
    return m if np.isfinite(m).all() and abs(np.linalg.det(m)) > 1e-6 else None


def pure_gamma(icc: bytes | None) -> float | None:
    """The exponent when every tone curve of the profile is the same power law: ``curv`` with one entry,
    ``para`` type 0, or ``para`` type 3 that is a power law but for a short linear toe (ROMM / ProPhoto
    as Qt and others write it: below 1/32 of the range); None for anything else (sRGB's own curve is a
    type 3 whose offset makes it no power law)."""
    tags = read_tags(icc) if icc else None
    if icc is None or tags is None:
        return None
    names = [b"kTRC"] if b"kTRC" in tags else [b"rTRC", b"gTRC", b"bTRC"]
    gammas = []
    for name in names:
        if name not in tags:
            return None
        g = _power_law(icc, *tags[name])
        if g is None:
            return None
        gammas.append(g)
    return gammas[0] if gammas[0] > 0 and all(abs(g - gammas[0]) < 1e-3 for g in gammas) else None


def _power_law(icc: bytes, offset: int, size: int) -> float | None:
    kind = icc[offset : offset + 4]
    try:
        if kind == b"curv" and size >= 14 and struct.unpack_from(">I", icc, offset + 8)[0] == 1:
            return struct.unpack_from(">H", icc, offset + 12)[0] / 256.0
        if kind != b"para" or size < 16:
            return None
        (function,) = struct.unpack_from(">H", icc, offset + 8)
        if function == 0:
            return struct.unpack_from(">i", icc, offset + 12)[0] / 65536.0
        if function == 3 and size >= 32:
            g, a, b, _c, d = (v / 65536.0 for v in struct.unpack_from(">5i", icc, offset + 12))
            if abs(a - 1.0) < 1e-3 and abs(b) < 1e-3 and d <= 1 / 32 + 1e-4:
                return g
    except struct.error:
        return None
    return None


RGB_CURVES = (b"rTRC", b"gTRC", b"bTRC")


@dataclass(frozen=True)
class MatrixShaper:
    """What a matrix-shaper profile says: each channel's tone curve and the primaries."""

    curves: np.ndarray  # (3, samples) float64: each channel's code in [0, 1] -> linear light
    to_xyz: np.ndarray | None  # 3×3 colorants (XYZ, D50); None for a gray profile (its gray is any space's neutral)

    @property
    def one_curve(self) -> bool:
        """The three curves are the same (every RGB working space in use; not some camera profiles)."""
        return bool(np.abs(self.curves - self.curves[0]).max() <= 1e-4)


def matrix_shaper(icc: bytes | None, samples: int = 256) -> MatrixShaper | None:
    """The curves (sampled at ``samples`` codes) and primaries of an RGB or gray matrix-shaper profile;
    None for a LUT-based, CMYK or Lab profile, or one whose curves do not read."""
    tags = read_tags(icc) if icc else None
    if icc is None or tags is None:
        return None
    space = color_space(icc)
    if space == b"GRAY":
        curve = tone_curve(icc, tags[b"kTRC"], samples) if b"kTRC" in tags else None
        return None if curve is None else MatrixShaper(np.stack([curve] * 3), None)
    if space != b"RGB ":
        return None
    curves = [tone_curve(icc, tags[t], samples) if t in tags else None for t in RGB_CURVES]
    to_xyz = colorants(icc, tags)
    if to_xyz is None or any(c is None for c in curves):
        return None
    return MatrixShaper(np.stack(curves), to_xyz)  # type: ignore[arg-type]


@functools.cache
def srgb_icc() -> bytes:
    """LittleCMS's own sRGB profile: the other side of every conversion to the screen or the web."""
    from PIL import ImageCms

    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
