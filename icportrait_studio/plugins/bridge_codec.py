"""Pixels in and out of the live bridge: raw buffers (what host APIs hand out) or encoded files.

Host plugins send the active layer as the host gives it, to avoid an encoder inside Krita, GIMP or
Photoshop: raw interleaved samples, 8 or 16 bits little-endian, in RGB/RGBA/BGR/BGRA order, with an
optional ``max_value`` (Photoshop's 16-bit samples run 0..32768, not 0..65535). Scripts can send a
PNG/TIFF/JPEG file instead. Samples are sRGB-encoded (or whatever the file's ICC profile says).
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass

import cv2
import numpy as np
import tifffile

from icportrait_studio.errors import InputError
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.plugins.export import encode_png, encode_rgba

ORDERS = ("rgb", "rgba", "bgr", "bgra")
MAX_SIDE = 30000
_TAG_ICC = 34675


@dataclass(frozen=True)
class RawSpec:
    width: int
    height: int
    order: str = "rgba"
    bit_depth: int = 8
    max_value: int = 0  # 0 = the full range of the bit depth

    @property
    def channels(self) -> int:
        return len(self.order)

    @property
    def full(self) -> int:
        return 255 if self.bit_depth == 8 else 65535

    @property
    def top(self) -> int:
        return self.max_value or self.full

    @property
    def nbytes(self) -> int:
        return self.width * self.height * self.channels * (self.bit_depth // 8)

    @classmethod
    def parse(cls, data: object) -> RawSpec:
        if not isinstance(data, dict):
            raise InputError("'raw' must be an object with width, height, order and bit_depth")
        try:
            spec = cls(int(data["width"]), int(data["height"]), str(data.get("order", "rgba")).lower(),
                       int(data.get("bit_depth", 8)), int(data.get("max_value", 0)))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"'raw' needs integer width and height ({exc})") from None
        if not (0 < spec.width <= MAX_SIDE and 0 < spec.height <= MAX_SIDE):
            raise InputError(f"raw size {spec.width}x{spec.height} is out of range")
        if spec.order not in ORDERS:
            raise InputError(f"raw order must be one of {', '.join(ORDERS)}")
        if spec.bit_depth not in (8, 16):
            raise InputError("raw bit_depth must be 8 or 16")
        if not 0 <= spec.max_value <= spec.full:
            raise InputError(f"raw max_value must be in 1..{spec.full}")
        return spec

    def to_dict(self) -> dict:
        return {"width": self.width, "height": self.height, "order": self.order, "bit_depth": self.bit_depth,
                "max_value": self.top}


@dataclass
class DecodedInput:
    rgb: np.ndarray  # linear float32
    alpha: np.ndarray | None
    bit_depth: int
    icc_profile: bytes | None


def decode_raw(body: bytes, spec: RawSpec) -> DecodedInput:
    if len(body) != spec.nbytes:
        raise InputError(f"raw body has {len(body)} bytes, {spec.width}x{spec.height} {spec.order} "
                         f"{spec.bit_depth}-bit needs {spec.nbytes}")
    dtype = np.uint8 if spec.bit_depth == 8 else np.dtype("<u2")
    arr = np.frombuffer(body, dtype=dtype).reshape(spec.height, spec.width, spec.channels)
    if arr.dtype.byteorder not in ("=", "|"):  # a big-endian machine: make the samples native
        arr = arr.astype(arr.dtype.newbyteorder("="))
    if spec.top != spec.full:
        arr = np.rint(np.minimum(arr.astype(np.float32) * (spec.full / spec.top), spec.full)).astype(arr.dtype)
    # OpenCV's channel shuffles are SIMD: several times faster than numpy fancy indexing on a big layer.
    alpha = None
    if spec.channels == 4:
        alpha = cv2.extractChannel(arr, 3).astype(np.float32) * np.float32(1.0 / spec.full)
        color = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB if spec.order == "bgra" else cv2.COLOR_RGBA2RGB)
    else:
        color = cv2.cvtColor(arr, cv2.COLOR_BGR2RGB) if spec.order == "bgr" else arr
    return DecodedInput(decode_to_linear(color), alpha, spec.bit_depth, None)


def decode_file(body: bytes, suffix: str) -> DecodedInput:
    """An encoded image (PNG, TIFF, JPEG, WebP) through the app's own loader (ICC, 16 bits, orientation)."""
    from icportrait_studio.imaging.io import load_image

    fd, tmp = tempfile.mkstemp(prefix="icp-bridge-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        loaded = load_image(tmp)
    finally:
        os.unlink(tmp)
    return DecodedInput(loaded.rgb, loaded.alpha, loaded.bit_depth, loaded.icc_profile)


def encode_raw(rgb: np.ndarray, alpha: np.ndarray | None, spec: RawSpec) -> bytes:
    """The result in the client's raw layout; a 4-channel order with no alpha gets an opaque one."""
    color = encode_from_linear(rgb, spec.bit_depth)
    if spec.channels == 4:
        if alpha is None:
            a = np.full(rgb.shape[:2], spec.full, color.dtype)
        else:  # saturating, rounding conversion (NaN and negatives become 0), as in imaging.color
            a = cv2.multiply(np.ascontiguousarray(alpha, np.float32), float(spec.full),
                             dtype=cv2.CV_8U if spec.bit_depth == 8 else cv2.CV_16U)
        r, g, b = cv2.split(color)
        arr = cv2.merge([b, g, r, a] if spec.order == "bgra" else [r, g, b, a])
    else:
        arr = cv2.cvtColor(color, cv2.COLOR_RGB2BGR) if spec.order == "bgr" else color
    if spec.top != spec.full:
        arr = np.rint(arr.astype(np.float32) * (spec.top / spec.full)).astype(arr.dtype)
    return arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()


def encode_file(rgb: np.ndarray, alpha: np.ndarray | None, fmt: str, bit_depth: int, icc: bytes | None) -> bytes:
    if fmt == "png":
        return encode_png(rgb, alpha, bit_depth=bit_depth, icc_profile=icc)
    if fmt == "tiff":
        buf = io.BytesIO()
        tifffile.imwrite(buf, encode_rgba(rgb, alpha, bit_depth), photometric="rgb",
                         extrasamples=("unassalpha",) if alpha is not None else None,
                         extratags=[(_TAG_ICC, 7, len(icc), icc, True)] if icc else [], metadata=None)
        return buf.getvalue()
    raise InputError(f"unknown result format {fmt!r}; use png, tiff or raw")
