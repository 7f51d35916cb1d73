"""RGB colour conversions through LittleCMS (Pillow's ImageCms), for profiles built from lookup tables.

The matrix-shaper profiles photographers' files nearly always carry are read by hand
(``icc_profile``) and converted with OpenCV at any precision. A profile built from lookup tables (an
``A2B0`` table: some scanner and camera profiles, ICC v4 "preference" profiles) needs a real colour
engine; Pillow's ImageCms wraps LittleCMS, on 8-bit codes. Transforms are relative colorimetric, as the
matrix path is, and built without LittleCMS's one-pixel cache, which two threads using one transform
at once would race on. LittleCMS samples a table pipeline into a 3D grid: its high-resolution grid
keeps 98 % of colours within a code of the exact pipeline at the default grid's speed (~60 ms per
megapixel here; a few codes off remain where the gamut clip bends it), where the exact pipeline costs
~400 ms per megapixel.
"""

from __future__ import annotations

import functools
import io

import numpy as np

from icportrait_studio.imaging.icc_profile import color_space

__all__ = ["apply", "rgb_transform"]


@functools.lru_cache(maxsize=8)
def rgb_transform(src_icc: bytes, dst_icc: bytes) -> object | None:
    """LittleCMS's transform between two RGB profiles (8-bit codes to 8-bit codes), or None where either
    is not an RGB profile or LittleCMS refuses it (damaged: never an exception)."""
    from PIL import ImageCms

    if color_space(src_icc) != b"RGB " or color_space(dst_icc) != b"RGB ":
        return None
    try:
        return ImageCms.buildTransform(ImageCms.ImageCmsProfile(io.BytesIO(src_icc)),
                                       ImageCms.ImageCmsProfile(io.BytesIO(dst_icc)), "RGB", "RGB",
                                       renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
                                       flags=ImageCms.Flags.NOCACHE | ImageCms.Flags.HIGHRESPRECALC)
    except Exception:  # a damaged or hostile profile reads as none, whatever LittleCMS makes of it
        return None


def apply(transform: object, codes: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 codes through ``transform`` (from ``rgb_transform``): a new HxWx3 uint8 array."""
    from PIL import Image, ImageCms

    src = Image.fromarray(np.ascontiguousarray(codes, dtype=np.uint8), "RGB")
    return np.asarray(ImageCms.applyTransform(src, transform))  # type: ignore[arg-type]
