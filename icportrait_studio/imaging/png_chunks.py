"""Ancillary PNG chunks our encoders cannot write themselves (OpenCV's 16-bit PNGs carry no metadata).

Chunks go right after IHDR: iCCP and gAMA must precede IDAT, and nothing else we write needs to.
"""

from __future__ import annotations

import struct
import zlib

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def insert_png_icc(png: bytes, icc: bytes) -> bytes:
    """Add an iCCP chunk (the embedded colour profile); shared by image saving and the layered exporters."""
    return _insert_png_chunk(png, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))


def insert_png_gamma1(png: bytes) -> bytes:
    """Add gAMA 1.0: the samples are linear light (PNG stores 1/gamma × 100000)."""
    return _insert_png_chunk(png, b"gAMA", struct.pack(">I", 100000))


def _insert_png_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    if png[:8] != _PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise OSError("unexpected PNG layout from the encoder")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]
