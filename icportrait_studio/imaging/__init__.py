"""Qt-free image I/O: files in, linear-light float32 RGB out (and back), with user-facing errors."""

from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear, linear_to_srgb, srgb_to_linear
from icportrait_studio.imaging.io import (
    DEFAULT_MAX_PIXELS,
    SAVE_EXTENSIONS,
    LoadedImage,
    image_info,
    load_image,
    save_image,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "SAVE_EXTENSIONS",
    "LoadedImage",
    "decode_to_linear",
    "encode_from_linear",
    "image_info",
    "linear_to_srgb",
    "load_image",
    "save_image",
    "srgb_to_linear",
]
