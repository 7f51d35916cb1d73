"""The file writers behind ``io.save_image``: encoders per format and the atomic write around them.

Each writer takes the encoded samples (uint8/uint16 colour and optional alpha), an ICC profile and a
quality and writes one format to an open binary file; ``_atomic_write`` wraps it in
``atomic.atomic_write`` so a failed save never leaves a half-written file.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from typing import BinaryIO

import cv2
import numpy as np
import tifffile
from PIL import Image

from icportrait_studio.imaging.atomic import atomic_write
from icportrait_studio.imaging.carried_landmarks import xmp_packet
from icportrait_studio.imaging.png_chunks import insert_jpeg_comment, insert_png_icc

_TAG_ICC = 34675
TAG_NOTE = 65000  # private TIFF tag: our carried-landmarks record

_Writer = Callable[[BinaryIO, np.ndarray, np.ndarray | None, bytes | None, int], None]


def _encode_alpha(alpha: np.ndarray, depth: int) -> np.ndarray:
    top = 255 if depth == 8 else 65535
    a = np.clip(np.nan_to_num(alpha.astype(np.float32, copy=False), nan=0.0), 0.0, 1.0)
    return np.rint(a * np.float32(top)).astype(np.uint8 if depth == 8 else np.uint16)


def _atomic_write(p: str, ext: str, write: Callable[[BinaryIO], None]) -> None:
    """``atomic.atomic_write`` for a writer that takes an open file (named: tifffile wants a name)."""

    def to_file(tmp: str) -> None:
        with open(tmp, "wb") as f:
            write(f)

    atomic_write(p, to_file, suffix=ext)


def _stack(color: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return color if alpha is None else np.concatenate([color, alpha[..., None]], axis=2)


# zlib level for 8-bit PNG. Pillow's default (6) spent 5–8 s on a 16 MP portrait, most of an export or of a
# batch photo; level 3 takes 1.6–2.8 s for files 8–14 % larger (level 1: 1.2–1.9 s, 17–24 % larger).
PNG_LEVEL = 3


def _write_png(f: BinaryIO, color: np.ndarray, alpha: np.ndarray | None, icc: bytes | None, quality: int) -> None:
    if color.dtype == np.uint8:
        _write_with_pil("PNG", f, color, alpha, icc, quality)
        return
    # Pillow cannot write 16-bit RGB PNG; OpenCV can (BGR order), but it cannot embed a profile.
    if alpha is None:
        bgr = cv2.cvtColor(color, cv2.COLOR_RGB2BGR)
    else:
        bgr = cv2.cvtColor(_stack(color, alpha), cv2.COLOR_RGBA2BGRA)
    ok, buf = cv2.imencode(".png", bgr)
    if not ok:
        raise OSError("the PNG encoder failed")
    data = buf.tobytes()
    f.write(insert_png_icc(data, icc) if icc else data)


def _write_png_then(edit: Callable[[bytes], bytes], writer: _Writer, f: BinaryIO, *args: object) -> None:
    """Run a PNG ``writer`` into memory and pass its bytes through ``edit`` (adds an ancillary chunk:
    gAMA 1.0 for linear samples, the carried-landmarks zTXt) before they reach ``f``."""
    buf = io.BytesIO()
    writer(buf, *args)  # type: ignore[arg-type]
    f.write(edit(buf.getvalue()))


def _write_with_pil(
    fmt: str, f: BinaryIO, color: np.ndarray, alpha: np.ndarray | None, icc: bytes | None, quality: int,
    xmp: bytes | None = None,
) -> None:
    params: dict[str, object] = {"icc_profile": icc} if icc else {}
    if xmp is not None:
        params["xmp"] = xmp
    if fmt == "JPEG":  # JPEG has no alpha: it is dropped
        # Full-resolution chroma at high quality: 4:2:0 visibly softens skin-tone edges in portraits.
        params["subsampling"] = 0 if quality >= 90 else 2
        alpha = None
    elif fmt == "WEBP" and quality >= 100:
        params["lossless"] = True
    elif fmt == "PNG":
        params["compress_level"] = PNG_LEVEL
    Image.fromarray(_stack(color, alpha)).save(f, format=fmt, quality=quality, **params)


NoteFor = Callable[[np.ndarray, "np.ndarray | None"], str]  # the record for the decoded (color, alpha)


def _decoded(data: bytes) -> tuple[np.ndarray, np.ndarray | None]:
    """(color, alpha) as the image reader returns them for a lossy file of ours (RGB, or RGBA split):
    a record's digest must be of what a decoder reads back, not of the samples encoded."""
    with Image.open(io.BytesIO(data)) as im:
        arr = np.asarray(im.convert("RGBA" if im.mode == "RGBA" else "RGB"))
    return (arr[..., :3], arr[..., 3]) if arr.shape[2] == 4 else (arr, None)


def _write_jpeg_noted(note_for: NoteFor, f: BinaryIO, color: np.ndarray, alpha: np.ndarray | None,
                      icc: bytes | None, quality: int) -> None:
    """JPEG with a comment made from the samples a decoder will read back. A comment leaves the coded
    image as it is, so the file decodes to the same samples."""
    buf = io.BytesIO()
    _write_with_pil("JPEG", buf, color, alpha, icc, quality)
    out = buf.getvalue()
    f.write(insert_jpeg_comment(out, note_for(*_decoded(out)).encode("ascii")))


def _write_webp_noted(note_for: NoteFor, f: BinaryIO, color: np.ndarray, alpha: np.ndarray | None,
                      icc: bytes | None, quality: int) -> None:
    """WebP with an XMP packet made from the samples a decoder will read back. The XMP chunk leaves the
    coded image alone, so encoding again with it decodes to the same samples; that is checked, and if it
    ever did not hold the file is written without the record rather than with a stale one."""
    plain = io.BytesIO()
    _write_with_pil("WEBP", plain, color, alpha, icc, quality)
    decoded = _decoded(plain.getvalue())
    noted = io.BytesIO()
    _write_with_pil("WEBP", noted, color, alpha, icc, quality, xmp=xmp_packet(note_for(*decoded)))
    again = _decoded(noted.getvalue())
    same = np.array_equal(again[0], decoded[0]) and (
        (again[1] is None and decoded[1] is None)
        or (again[1] is not None and decoded[1] is not None and np.array_equal(again[1], decoded[1])))
    f.write(noted.getvalue() if same else plain.getvalue())


def _write_tiff(f: BinaryIO, color: np.ndarray, alpha: np.ndarray | None, icc: bytes | None, quality: int,
                note: str | None = None) -> None:
    # Uncompressed: deflate makes a 16-megapixel 16-bit save several seconds slower for ~20 % less size.
    extratags = [(_TAG_ICC, 7, len(icc), icc, True)] if icc else []
    if note is not None:  # a private ASCII tag (the carried landmarks' record)
        extratags.append((TAG_NOTE, "s", 0, note, True))
    tifffile.imwrite(
        f,
        _stack(color, alpha),
        photometric="rgb",
        extrasamples=("unassalpha",) if alpha is not None else None,
        extratags=extratags,
        metadata=None,
    )


_WRITERS: dict[str, _Writer] = {
    ".png": _write_png,
    ".jpg": functools.partial(_write_with_pil, "JPEG"),
    ".jpeg": functools.partial(_write_with_pil, "JPEG"),
    ".tif": _write_tiff,
    ".tiff": _write_tiff,
    ".webp": functools.partial(_write_with_pil, "WEBP"),
}
