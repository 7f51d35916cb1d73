"""Metadata our encoders cannot write themselves: ancillary PNG chunks (OpenCV's 16-bit PNGs carry no
metadata) and a JPEG comment segment.

Chunks go right after IHDR: iCCP and gAMA must precede IDAT, and nothing else we write needs to.
"""

from __future__ import annotations

import struct
import zlib

from icportrait_studio.imaging.signatures import PNG_SIGNATURE


def insert_png_icc(png: bytes, icc: bytes) -> bytes:
    """Add an iCCP chunk (the embedded colour profile); shared by image saving and the layered exporters."""
    return _insert_png_chunk(png, b"iCCP", b"ICC Profile\x00\x00" + zlib.compress(icc))


def insert_png_gamma1(png: bytes) -> bytes:
    """Add gAMA 1.0: the samples are linear light (PNG stores 1/gamma × 100000)."""
    return _insert_png_chunk(png, b"gAMA", struct.pack(">I", 100000))


def _insert_png_chunk(png: bytes, kind: bytes, body: bytes) -> bytes:
    if png[:8] != PNG_SIGNATURE or png[12:16] != b"IHDR":
        raise OSError("unexpected PNG layout from the encoder")
    ihdr_end = 8 + 12 + struct.unpack(">I", png[8:12])[0]
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return png[:ihdr_end] + chunk + png[ihdr_end:]


def insert_png_ztxt(png: bytes, keyword: str, text: str) -> bytes:
    """Add a zTXt chunk (compressed Latin-1 text under ``keyword``); editors keep or drop it as they like."""
    body = keyword.encode("latin-1") + b"\x00\x00" + zlib.compress(text.encode("latin-1"))
    return _insert_png_chunk(png, b"zTXt", body)


def read_png_ztxt(path: str, keyword: str, *, max_chunks: int = 64) -> str | None:
    """The text of the first zTXt/tEXt chunk named ``keyword`` before the image data, or None.

    Walks the chunk headers only (seeking past bodies), so it costs a few reads even on a huge file.
    """
    key = keyword.encode("latin-1")
    with open(path, "rb") as f:
        if f.read(8) != PNG_SIGNATURE:
            return None
        for _ in range(max_chunks):
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I", head[:4])[0], head[4:]
            if kind in (b"IDAT", b"IEND"):
                return None
            if kind in (b"zTXt", b"tEXt") and length < 1 << 22:
                body = f.read(length)
                f.seek(4, 1)
                name, _, rest = body.partition(b"\x00")
                if name != key:
                    continue
                try:
                    raw = zlib.decompress(rest[1:]) if kind == b"zTXt" else rest
                    return raw.decode("latin-1")
                except (zlib.error, UnicodeDecodeError):
                    return None
            else:
                f.seek(length + 4, 1)
    return None


def insert_jpeg_comment(data: bytes, text: bytes) -> bytes:
    """``data`` (a JPEG) with a COM segment holding ``text``, placed after the APPn segments (JFIF
    readers expect APP0 first). The coded image is not touched."""
    if data[:2] != b"\xff\xd8" or len(text) > 65533:
        raise ValueError("not a JPEG, or the comment is too long for one segment")
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF and 0xE0 <= data[pos + 1] <= 0xEF:
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
    segment = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return data[:pos] + segment + data[pos:]
