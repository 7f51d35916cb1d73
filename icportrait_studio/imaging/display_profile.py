"""What an sRGB screen should show for a photo tagged with another colour profile (the canvas).

The canvas painted a photo's codes as if they were sRGB: an Adobe RGB portrait from a camera looked
dull and a Display P3 one from a phone a little flat, next to the same file in Photoshop. A
matrix-shaper profile (every RGB working space in use) maps codes to screen colour with three tone
curves and one 3×3 matrix: decoded through the profile's curves, moved to sRGB's primaries (both
through XYZ under D50, as the profile connection space defines them), clipped to sRGB's gamut and
encoded with sRGB's curve. That is what LittleCMS does for these profiles, to within a code, but here
as two OpenCV passes that run on the render threads (a 12 MP frame in tens of milliseconds, against
a quarter to half a second through ``ImageCms``). An RGB or gray profile built from lookup tables (some
scanner and camera profiles, ICC v4 "preference" profiles) goes through LittleCMS itself
(``CmsTransform``): slower, but such photos are rare and the drag preview is small. CMYK and Lab
photos are not handled here: they are shown as before.

Only the screen sees this: files are written with their own profile, and the relighting maths is
unchanged.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.imaging import littlecms
from icportrait_studio.imaging.color import encode_from_linear
from icportrait_studio.imaging.icc_profile import MatrixShaper, matrix_shaper, srgb_icc

__all__ = ["CmsTransform", "DisplayTransform", "ScreenTransform", "display_transform", "profile_name"]

_SAME_CURVE = 0.5 / 255  # curves closer than this to sRGB's decode change no displayed code
_SAME_MATRIX = 1e-3


@dataclass(frozen=True)
class DisplayTransform:
    """8-bit codes in a photo's colour space -> 8-bit sRGB codes for the screen."""

    curves: np.ndarray  # (256, 1, 3) float32: each channel's code -> linear light in the profile's primaries
    matrix: np.ndarray  # (3, 3) float32: the profile's linear RGB -> linear sRGB
    srgb_curves: bool = False  # the curves are sRGB's (Display P3, or a linear photo): decoded values are exact

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> HxWx3 uint8 sRGB (a new array)."""
        src = np.ascontiguousarray(codes, dtype=np.uint8)
        lin = cv2.LUT(src, self.curves)
        return encode_from_linear(cv2.transform(lin, self.matrix), 8)

    def from_linear(self, rgb_linear: np.ndarray) -> np.ndarray:
        """The photo's decoded values (HxWx3 float, as the app holds them) -> HxWx3 uint8 sRGB for the screen.

        When the profile's curves are sRGB's, the values the app decoded are already the profile's linear
        light, and the matrix applies to them directly (a 512² drag preview: ~1.5 ms instead of ~4)."""
        if self.srgb_curves:
            return encode_from_linear(cv2.transform(np.ascontiguousarray(rgb_linear, dtype=np.float32), self.matrix), 8)
        return self.apply(encode_from_linear(rgb_linear, 8))


@dataclass(frozen=True, eq=False)
class CmsTransform:
    """8-bit codes in a profile's colours -> 8-bit sRGB codes, through LittleCMS (``imaging.littlecms``),
    for the RGB profiles built from lookup tables that the matrix path cannot read."""

    transform: object  # from ``littlecms.rgb_transform``, the profile -> sRGB

    def apply(self, codes: np.ndarray) -> np.ndarray:
        """HxWx3 uint8 -> HxWx3 uint8 sRGB (a new array)."""
        return littlecms.apply(self.transform, codes)

    def from_linear(self, rgb_linear: np.ndarray) -> np.ndarray:
        """The photo's decoded values (HxWx3 float, decoded with sRGB's curve) -> HxWx3 uint8 sRGB."""
        return self.apply(encode_from_linear(rgb_linear, 8))


ScreenTransform = DisplayTransform | CmsTransform


def display_transform(icc: bytes | None, encoding: str = "srgb") -> ScreenTransform | None:
    """The transform for a photo with this embedded profile, or None when its codes already are what an
    sRGB screen should show (no profile, an sRGB one, or one this module cannot read).

    ``encoding`` is how the photo was decoded ("srgb" or "linear"): the canvas encodes the decoded values
    with sRGB's curve, so for a linear photo those codes are undone with sRGB's curve, not the profile's.
    """
    if not icc:
        return None
    try:
        return _build(bytes(icc), encoding == "linear")
    except Exception:  # a hostile or damaged profile must never stop a photo from showing
        return None


@functools.lru_cache(maxsize=8)
def _build(icc: bytes, linear: bool) -> ScreenTransform | None:
    shaper = matrix_shaper(icc)
    if shaper is None:
        # a linear photo's codes are sRGB's curve over its light: a table profile cannot be told so
        transform = None if linear else littlecms.rgb_transform(icc, srgb_icc())
        return None if transform is None else CmsTransform(transform)
    srgb = _srgb()
    lut = srgb.curves.T if linear else shaper.curves.T  # (256, 3)
    # src linear -> XYZ -> sRGB linear; a gray profile's equal channels are sRGB's neutral already
    matrix = np.eye(3) if shaper.to_xyz is None else np.linalg.solve(srgb.to_xyz, shaper.to_xyz)
    srgb_curves = bool(np.abs(lut - srgb.curves[0][:, None]).max() < _SAME_CURVE)
    if srgb_curves and np.abs(matrix - np.eye(3)).max() < _SAME_MATRIX:
        return None
    return DisplayTransform(curves=lut.reshape(256, 1, 3).astype(np.float32), matrix=matrix.astype(np.float32),
                            srgb_curves=srgb_curves)


@functools.cache
def _srgb() -> MatrixShaper:
    shaper = matrix_shaper(srgb_icc())
    assert shaper is not None and shaper.to_xyz is not None
    return shaper


def profile_name(icc: bytes | None) -> str | None:
    """The profile's description ("Adobe RGB (1998)"), or None."""
    if not icc:
        return None
    try:
        from PIL import ImageCms

        name = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()
        return name or None
    except Exception:
        return None
