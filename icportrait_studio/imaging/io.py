"""Load and save images as linear-light float32 RGB (+ optional straight alpha).

Everything a user can get wrong with a file (missing, empty, not an image, damaged, truncated, too
large) surfaces as ``InputError`` with a one-line message naming the file, never as a traceback.
Decoders: Pillow for most formats; OpenCV for 16-bit PNG (Pillow reduces 16-bit RGB PNG to 8 bits);
tifffile for TIFF (16-bit and float samples; float samples are read as already-encoded values,
clipped to [0, 1], like their integer siblings). Samples count as sRGB-encoded unless the file says
they are linear (gAMA 1.0, linear ICC curves) or the caller asks for that (encoding.py). Pixels stay
in the file's colour space (its ICC profile is kept for saving), except CMYK, which is converted to
sRGB. Saving is atomic: a temp file in the target folder is written, fsynced and renamed over the
target, so a failed save never leaves a half-written file (the per-format writers are in writers.py).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import stat
import threading
import warnings as py_warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np
import tifffile
from PIL import Image, ImageCms, UnidentifiedImageError

from icportrait_studio.errors import InputError
from icportrait_studio.imaging import carried_landmarks
from icportrait_studio.imaging.encoding import from_linear, linear_reason, resolve_encoding, to_linear
from icportrait_studio.imaging.png_chunks import insert_png_gamma1, insert_png_ztxt
from icportrait_studio.imaging.signatures import PNG_SIGNATURE, TIFF_SIGNATURES, unsupported_kind
from icportrait_studio.imaging.writers import (
    _WRITERS,
    TAG_NOTE,
    _atomic_write,
    _encode_alpha,
    _write_jpeg_noted,
    _write_png_then,
    _write_tiff,
    _write_webp_noted,
)

__all__ = ["DEFAULT_MAX_PIXELS", "SAVE_EXTENSIONS", "LoadedImage", "image_info", "load_image", "save_image"]

DEFAULT_MAX_PIXELS = 120_000_000
SAVE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")

# load_image checks the pixel count against its own max_pixels before decoding. Pillow's global
# bomb check would otherwise fire first, with its own exception type and a limit we don't choose.
Image.MAX_IMAGE_PIXELS = None

EXIF_DAMAGED = "the photo's EXIF data is damaged: its orientation could not be read, so it is shown as stored"
_PNG16_MODES = {0: "I;16", 2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}  # by PNG colour type
_TAG_ORIENTATION = 274
_TAG_ICC = 34675


@dataclass
class LoadedImage:
    """A decoded image: linear-light RGB plus what is needed to save it back faithfully."""

    rgb: np.ndarray  # float32 HxWx3, linear light, C-contiguous
    alpha: np.ndarray | None  # float32 HxW in [0, 1] (straight, not premultiplied), or None
    bit_depth: int  # 8 or 16 (float files count as 16)
    icc_profile: bytes | None  # embedded profile, to embed again on save; None means sRGB
    source_mode: str  # Pillow-style mode of the file: 'RGB', 'L', 'CMYK', 'I;16', 'RGB;16', ...
    orientation_applied: int  # EXIF orientation that was undone (1 = none)
    path: str
    warnings: list[str] = field(default_factory=list)
    encoding: str = "srgb"  # how the samples were decoded ('srgb' or 'linear'): save with the same to round-trip
    landmarks: np.ndarray | None = None  # face landmarks an earlier edit stored in the file (pixels unchanged since)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the upright image."""
        return int(self.rgb.shape[1]), int(self.rgb.shape[0])


@dataclass
class _Decoded:
    """sRGB-encoded samples straight from the file, before orientation and linearisation."""

    color: np.ndarray  # HxW (gray) or HxWx3; uint8, uint16 or float32 in [0, 1]
    alpha: np.ndarray | None  # HxW, same dtype family as color
    bit_depth: int
    source_mode: str
    icc: bytes | None
    orientation: int = 1
    warnings: list[str] = field(default_factory=list)
    png_gamma: float | None = None  # the PNG gAMA value as Pillow reads it (1.0 = linear), if any
    note: str | None = None  # our carried-landmarks record (PNG zTXt, TIFF tag, JPEG comment, WebP XMP), if any


# ---------------------------------------------------------------------------------------------------
# Loading


def load_image(
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS, encoding: str = "auto"
) -> LoadedImage:
    """Decode an image file to linear float32 RGB; any problem with the file raises ``InputError``.

    ``encoding``: "srgb", "linear" (the samples already are linear light) or "auto" (ask the file)."""
    p = os.fspath(path)
    resolve_encoding(encoding, icc=None, png_gamma=None)  # a bad value fails before any decoding
    _check_regular_file(p)
    try:
        dec = _decode(p, max_pixels)
        enc = resolve_encoding(encoding, icc=dec.icc, png_gamma=dec.png_gamma)
        if enc == "linear" and encoding == "auto":
            why = linear_reason(dec.icc, dec.png_gamma)
            dec.warnings.append(f"the file says its pixel values are linear light ({why}): decoded as linear")
        color = _apply_orientation(dec.color, dec.orientation)
        if color.ndim == 2:  # gray: linearise one channel, then replicate
            rgb = np.repeat(to_linear(color, enc)[..., None], 3, axis=2)
        else:
            rgb = to_linear(np.ascontiguousarray(color), enc)
        alpha = None
        if dec.alpha is not None:
            alpha = np.ascontiguousarray(_alpha_to_float(_apply_orientation(dec.alpha, dec.orientation)))
        landmarks = _carried_landmarks(dec)
    except InputError:
        raise
    except MemoryError as exc:
        raise InputError(f"Cannot open '{p}': not enough memory to decode it") from exc
    except Exception as exc:
        raise InputError(f"Cannot open '{p}': {_describe_failure(exc)}") from exc
    return LoadedImage(
        rgb=rgb,
        alpha=alpha,
        bit_depth=dec.bit_depth,
        icc_profile=dec.icc,
        source_mode=dec.source_mode,
        orientation_applied=dec.orientation,
        path=p,
        warnings=dec.warnings,
        encoding=enc,
        landmarks=landmarks,
    )


def _carried_landmarks(dec: _Decoded) -> np.ndarray | None:
    """Landmarks stored by an earlier edit, if the samples are still the ones it wrote (see carried_landmarks)."""
    if dec.note is None or dec.orientation != 1 or dec.color.ndim != 3 or dec.color.dtype.kind != "u":
        return None
    return carried_landmarks.decode_record(dec.note, carried_landmarks.pixel_digest(dec.color, dec.alpha))


def image_info(path: str | os.PathLike[str]) -> tuple[int, int, str]:
    """(width, height, mode) from the header only, with width/height as load_image would return them."""
    p = os.fspath(path)
    _check_regular_file(p)
    try:
        head = _read_head(p)
        if head[:4] in TIFF_SIGNATURES:
            with contextlib.suppress(Exception), tifffile.TiffFile(p) as tf:
                page = tf.pages[0]
                w, h = int(page.imagewidth), int(page.imagelength)
                mode = _tiff_mode(page)
                return (h, w, mode) if _tiff_orientation(page) >= 5 else (w, h, mode)
        with _open_with_pil(p, head)[0] as im:
            w, h = im.size
            mode = _PNG16_MODES.get(head[25], im.mode) if _is_png16(im, head) else im.mode
            orientation = _exif_orientation(im, allow_decode=False)
    except InputError:
        raise
    except UnidentifiedImageError as exc:
        raise InputError(f"Cannot open '{p}': not a recognised image, or the file is damaged") from exc
    except Exception as exc:
        raise InputError(f"Cannot open '{p}': {_describe_failure(exc)}") from exc
    return (h, w, mode) if orientation >= 5 else (w, h, mode)


def _check_regular_file(p: str) -> None:
    """Clear messages for the common non-image cases, before any decoder sees the path."""
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"Cannot open '{p}': file not found") from None
    except PermissionError:
        raise InputError(f"Cannot open '{p}': permission denied") from None
    except (OSError, ValueError) as exc:
        raise InputError(f"Cannot open '{p}': {_describe_failure(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"Cannot open '{p}': it is a folder, not an image file")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device would block or stream forever
        raise InputError(f"Cannot open '{p}': not a regular file")
    if st.st_size == 0:
        raise InputError(f"Cannot open '{p}': the file is empty (0 bytes)")


def _describe_failure(exc: BaseException) -> str:
    """One line, no traceback, about why a decoder gave up."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(detail) > 120:
        detail = detail[:117] + "..."
    return f"the file is damaged, truncated or not a supported image ({detail})"


def _check_size(p: str, width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise InputError(f"Cannot open '{p}': the image has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise InputError(
            f"Cannot open '{p}': {width}×{height} is {width * height / 1e6:.1f} megapixels, "
            f"over the limit of {max_pixels / 1e6:.1f} megapixels ({max_pixels} pixels)"
        )


def _read_head(p: str) -> bytes:
    with open(p, "rb") as f:
        return f.read(32).ljust(32, b"\x00")


def _decode(p: str, max_pixels: int) -> _Decoded:
    head = _read_head(p)
    if head[:4] in TIFF_SIGNATURES:
        try:
            dec = _decode_tiff(p, max_pixels)
        except InputError:
            raise
        except Exception:
            dec = None  # e.g. a codec tifffile lacks (LZW, JPEG): Pillow may still read it
        if dec is not None:
            return dec
    return _decode_with_pil(p, head, max_pixels)


def _is_png16(im: Image.Image, head: bytes) -> bool:
    return im.format == "PNG" and head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR" and head[24] == 16


_WARNINGS_LOCK = threading.Lock()


@contextlib.contextmanager
def _recorded_warnings() -> Iterator[list[py_warnings.WarningMessage]]:
    """Python warnings raised inside, recorded instead of printed.

    ``warnings.catch_warnings`` swaps process-wide state and restores it on exit: two loads on different
    threads (the app's job pool) that interleaved could leave the recorder of the first installed for
    good, swallowing every later warning. Our own uses are serialised; each is a header parse or a
    lookup in an already decoded image, so the lock is held briefly.
    """
    with _WARNINGS_LOCK, py_warnings.catch_warnings(record=True) as caught:
        py_warnings.simplefilter("always")
        yield caught


def _open_with_pil(p: str, head: bytes) -> tuple[Image.Image, bool]:
    """``Image.open`` with a clear message for what it cannot read, and (second) whether it complained
    about the file's EXIF block: Pillow reads it while opening a JPEG and says so as a Python warning,
    which reached the CLI's stderr raw; it is recorded here and becomes one note."""
    with _recorded_warnings() as caught:
        try:
            im = Image.open(p)
        except UnidentifiedImageError:
            kind = unsupported_kind(head)
            if kind:
                raise InputError(f"Cannot open '{p}': {kind} files are not supported; export it as JPEG, PNG "
                                 "or TIFF first") from None
            raise InputError(f"Cannot open '{p}': not a recognised image, or the file is damaged") from None
    return im, any("exif" in str(w.message).lower() for w in caught)


def _decode_with_pil(p: str, head: bytes, max_pixels: int) -> _Decoded:
    im_ctx, exif_complaint = _open_with_pil(p, head)
    with im_ctx as im:
        width, height = im.size
        _check_size(p, width, height, max_pixels)  # header only: nothing decoded yet
        icc = im.info.get("icc_profile") or None
        gamma = im.info.get("gamma") if im.format == "PNG" else None
        note = _note_in(im)
        warnings: list[str] = []
        if getattr(im, "n_frames", 1) > 1 and im.format != "MPO":
            warnings.append("the file holds several images; only the first was loaded")
        if _is_png16(im, head):
            orientation = _exif_orientation(im, allow_decode=False)
            color, alpha = _decode_png16(p, width, height)
            mode = _PNG16_MODES.get(head[25], im.mode)
            return _Decoded(color, alpha, 16, mode, icc, orientation, warnings, gamma, note)
        im.load()  # force the full decode here so truncation errors surface now
        orientation = _exif_orientation(im, allow_decode=True, notes=warnings)
        if exif_complaint and EXIF_DAMAGED not in warnings:
            warnings.append(EXIF_DAMAGED)
        mode = im.mode
        color, alpha, bit_depth, icc = _pil_to_arrays(im, icc, warnings)
        return _Decoded(color, alpha, bit_depth, mode, icc, orientation, warnings, gamma, note)


def _note_in(im: Image.Image) -> str | None:
    """Our record from the text Pillow read with the header: a PNG zTXt chunk, a JPEG comment or WebP XMP."""
    if im.format == "WEBP":
        xmp = im.info.get("xmp")
        return carried_landmarks.record_from_xmp(xmp) if isinstance(xmp, (bytes, str)) else None
    value = im.info.get(carried_landmarks.KEYWORD) if im.format == "PNG" else \
        im.info.get("comment") if im.format in ("JPEG", "MPO") else None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _pil_to_arrays(
    im: Image.Image, icc: bytes | None, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray | None, int, bytes | None]:
    """Pillow image of any mode -> (color, alpha, bit_depth, icc) with gray kept single-channel."""
    mode = im.mode
    if mode == "CMYK":
        rgb_im = None
        if icc:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
                rgb_im = ImageCms.profileToProfile(im, src, _srgb_profile(), outputMode="RGB")
            except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
                warnings.append("the embedded CMYK colour profile could not be used; colours are approximate")
        if rgb_im is None:
            rgb_im = im.convert("RGB")  # Pillow already undoes Adobe's inverted CMYK JPEGs
        warnings.insert(0, "converted from CMYK to sRGB")
        return np.asarray(rgb_im), None, 8, None  # pixels are sRGB now: the CMYK profile no longer applies
    if mode.startswith("I;16"):
        return np.asarray(im).astype(np.uint16), None, 16, icc
    if mode == "I":
        return np.clip(np.asarray(im), 0, 65535).astype(np.uint16), None, 16, icc
    if mode == "F":
        return _clip_float(np.asarray(im, dtype=np.float32), warnings), None, 16, icc
    if "transparency" in im.info and mode in ("1", "L", "P", "RGB"):
        im = im.convert("RGBA")
    elif mode in ("P", "PA", "RGBa"):
        im = im.convert("RGBA" if mode != "P" else "RGB")
    elif mode in ("1", "La"):
        im = im.convert("L" if mode == "1" else "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "RGBX"):
        im = im.convert("RGB")  # YCbCr, LAB, HSV, ...
        warnings.append(f"converted from {mode} to RGB")
    arr = np.asarray(im)
    if im.mode == "L":
        return arr, None, 8, icc
    if im.mode == "LA":
        return arr[..., 0], arr[..., 1], 8, icc
    if im.mode == "RGBA":
        return arr[..., :3], arr[..., 3], 8, icc
    return arr[..., :3], None, 8, icc


@functools.cache
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _decode_png16(p: str, width: int, height: int) -> tuple[np.ndarray, np.ndarray | None]:
    """16-bit PNG via OpenCV, which keeps all 16 bits (Pillow reduces RGB to 8)."""
    arr = cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.shape[:2] != (height, width):
        raise InputError(f"Cannot open '{p}': the PNG data is damaged or truncated")
    if arr.ndim == 2:
        return arr, None
    channels = arr.shape[2]
    if channels == 1:
        return arr[..., 0], None
    if channels == 2:
        return arr[..., 0], arr[..., 1]
    if channels == 3:
        return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB), None
    return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGB), arr[..., 3]


def _decode_tiff(p: str, max_pixels: int) -> _Decoded | None:
    """TIFF via tifffile (8/16-bit and float, gray or RGB, optional alpha); None = let Pillow try."""
    with tifffile.TiffFile(p) as tf:
        page = tf.pages[0]
        if not isinstance(page, tifffile.TiffPage):
            return None
        _check_size(p, int(page.imagewidth), int(page.imagelength), max_pixels)
        photometric = page.photometric
        gray = photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE)
        if not (gray or photometric == tifffile.PHOTOMETRIC.RGB):
            return None  # palette, CMYK, YCbCr, ...: Pillow's job
        wide = page.dtype is not None and page.dtype.kind in "iu" and page.dtype not in (np.uint8, np.uint16)
        if not wide and page.dtype not in (np.uint8, np.uint16, np.float16, np.float32, np.float64):
            return None
        if set(page.axes) - {"Y", "X", "S"}:
            return None
        arr = page.asarray()
        if wide:
            arr = _wide_integers(p, arr)
        if page.axes.startswith("S"):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 2:
            arr = arr[..., None]
        n_color = 1 if gray else 3
        extras = tuple(page.extrasamples or ())
        has_alpha = arr.shape[2] > n_color and bool(extras) and extras[0] in (1, 2)
        warnings: list[str] = []
        if len(tf.pages) > 1:
            warnings.append("the file holds several images; only the first was loaded")
        color = arr[..., 0] if gray else arr[..., :3]
        alpha = arr[..., n_color] if has_alpha else None
        is_float = arr.dtype.kind == "f"
        if is_float:
            color = _clip_float(color.astype(np.float32), warnings)
            alpha = None if alpha is None else np.clip(np.nan_to_num(alpha.astype(np.float32)), 0, 1)
        if photometric == tifffile.PHOTOMETRIC.MINISWHITE:
            color = (1.0 - color) if is_float else (np.iinfo(color.dtype).max - color)
        if has_alpha and extras[0] == 1 and alpha is not None:  # associated alpha: undo premultiplication
            color = _unpremultiply(color, alpha)
        icc_tag = page.tags.get(_TAG_ICC)
        icc = bytes(icc_tag.value) if icc_tag is not None and icc_tag.value else None
        bit_depth = 8 if arr.dtype == np.uint8 else 16
        note_tag = page.tags.get(TAG_NOTE)
        note = note_tag.value if note_tag is not None and isinstance(note_tag.value, str) else None
        return _Decoded(color, alpha, bit_depth, _tiff_mode(page), icc, _tiff_orientation(page), warnings,
                        note=note)


def _wide_integers(p: str, arr: np.ndarray) -> np.ndarray:
    """Signed or 32/64-bit integer samples (scientific cameras, ImageJ, Pillow's "I" mode) -> float in [0, 1].

    Unsigned samples span their type's range, as 8- and 16-bit ones do. Signed ones have no such
    convention: values within 0–65535 are 16-bit data in a wider type (what Pillow writes), anything else
    (negative values, or past 65535) is measurement data whose black and white the file does not say,
    refused with the range found rather than shown as a black or white frame ("no face found").
    """
    if arr.dtype.kind == "u":
        return (arr.astype(np.float64) / float(np.iinfo(arr.dtype).max)).astype(np.float32)
    lo, hi = int(arr.min(initial=0)), int(arr.max(initial=0))
    if lo < 0 or hi > 65535:
        raise InputError(
            f"Cannot open '{p}': its samples are signed {8 * arr.dtype.itemsize}-bit integers from {lo} to {hi}, "
            "with no black or white point for a photo: save it with unsigned 8- or 16-bit samples, or as "
            "32-bit float in 0–1"
        )
    return (arr.astype(np.float32) / np.float32(65535.0))


def _tiff_mode(page: tifffile.TiffPage) -> str:
    gray = page.photometric in (tifffile.PHOTOMETRIC.MINISBLACK, tifffile.PHOTOMETRIC.MINISWHITE)
    extras = tuple(page.extrasamples or ())
    alpha = bool(extras) and extras[0] in (1, 2)
    base = ("LA" if alpha else "L") if gray else ("RGBA" if alpha else "RGB")
    if page.dtype is None or page.dtype == np.uint8:
        return base
    if page.dtype.kind == "f":
        return "F" if base == "L" else f"{base};F"
    return "I;16" if base == "L" else f"{base};16"


def _tiff_orientation(page: tifffile.TiffPage) -> int:
    tag = page.tags.get(_TAG_ORIENTATION)
    try:
        value = int(tag.value) if tag is not None else 1
    except (TypeError, ValueError):
        return 1
    return value if 1 <= value <= 8 else 1


def _clip_float(a: np.ndarray, warnings: list[str]) -> np.ndarray:
    """Float samples are taken as encoded values in [0, 1] (as the integer formats are)."""
    if not np.isfinite(a).all() or a.min(initial=0.0) < 0.0 or a.max(initial=0.0) > 1.0:
        warnings.append("floating-point values outside 0–1 were clipped")
        a = np.clip(np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0), 0.0, 1.0)
    return a


def _unpremultiply(color: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    top = 1.0 if color.dtype.kind == "f" else float(np.iinfo(color.dtype).max)
    a = alpha.astype(np.float32) / np.float32(top)
    a = a if color.ndim == 2 else a[..., None]
    out = np.where(a > 0, color.astype(np.float32) / np.maximum(a, np.float32(1e-8)), 0)
    out = np.clip(out, 0, top)
    return out.astype(np.float32) if color.dtype.kind == "f" else np.rint(out).astype(color.dtype)


def _exif_orientation(im: Image.Image, *, allow_decode: bool, notes: list[str] | None = None) -> int:
    """The EXIF orientation tag (1..8), 1 when absent or unreadable.

    A damaged EXIF block must not stop the image from loading; Pillow's complaints about it (Python
    warnings, which the CLI printed raw on stderr) become one note in ``notes`` when one is given."""
    value, failed = 1, False
    with _recorded_warnings() as caught:
        try:
            if im.format == "PNG" and not allow_decode:
                # Pillow's PNG getexif() decodes the whole image to look for a late eXIf chunk.
                raw = im.info.get("exif")
                if not raw:
                    return 1
                exif = Image.Exif()
                exif.load(raw)
            else:
                exif = im.getexif()
            value = int(exif.get(_TAG_ORIENTATION, 1))
        except Exception:
            failed = True
    if notes is not None and (failed or caught or not 0 <= value <= 8):  # 0: "undefined", as some writers put it
        notes.append(EXIF_DAMAGED)
    return value if 1 <= value <= 8 else 1


# EXIF orientation -> the transform that makes the image upright (same as PIL.ImageOps.exif_transpose),
# in OpenCV's copying kernels: numpy's rotated or flipped views cost a strided copy later (a 12 MP phone
# photo turned upright, orientation 6: 164 ms against 26 ms on the 2-core development VM).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: cv2.flip(a, 1),
    3: lambda a: cv2.rotate(a, cv2.ROTATE_180),
    4: lambda a: cv2.flip(a, 0),
    5: lambda a: cv2.transpose(a),
    6: lambda a: cv2.rotate(a, cv2.ROTATE_90_CLOCKWISE),
    7: lambda a: cv2.transpose(cv2.rotate(a, cv2.ROTATE_180)),
    8: lambda a: cv2.rotate(a, cv2.ROTATE_90_COUNTERCLOCKWISE),
}


def _apply_orientation(a: np.ndarray, orientation: int) -> np.ndarray:
    """``a`` (a decoded plane: uint8, uint16 or float32; gray, RGB or alpha) turned upright."""
    if orientation not in _UPRIGHT:
        return a
    out = _UPRIGHT[orientation](np.ascontiguousarray(a))
    return out.reshape(out.shape[:2] + a.shape[2:])  # OpenCV drops a single channel's axis


def _alpha_to_float(a: np.ndarray) -> np.ndarray:
    """Alpha is coverage, not light: scale linearly, no sRGB curve."""
    if a.dtype.kind == "f":
        return a.astype(np.float32)
    return np.multiply(a, np.float32(1.0 / np.iinfo(a.dtype).max), dtype=np.float32)


# ---------------------------------------------------------------------------------------------------
# Saving

def save_image(
    path: str | os.PathLike[str],
    rgb_linear: np.ndarray,
    *,
    alpha: np.ndarray | None = None,
    bit_depth: int | None = None,
    icc_profile: bytes | None = None,
    quality: int = 95,
    encoding: str = "srgb",
    landmarks: np.ndarray | None = None,
) -> None:
    """Encode linear RGB (HxWx3) and write it atomically; the format follows the extension.

    PNG: 8 or 16 bits. JPEG and WebP: 8 bits (JPEG drops alpha). TIFF: 16 bits by default, alpha as
    an unassociated extra sample. The ICC profile, when given, is embedded (PNG, JPEG, TIFF, WebP).
    ``encoding="linear"`` writes linear samples (a PNG without a profile gets gAMA 1.0 to say so).
    ``landmarks`` (N×3, pixels of this image) are stored in a PNG for the next edit of the file to reuse.
    """
    p = os.fspath(path)
    if encoding not in ("srgb", "linear"):
        raise InputError(f"Cannot save '{p}': unknown encoding {encoding!r}; use 'srgb' or 'linear'")
    ext = os.path.splitext(p)[1].lower()
    if ext not in SAVE_EXTENSIONS:
        raise InputError(
            f"Cannot save '{p}': unsupported file type '{ext or '(none)'}'; use one of {', '.join(SAVE_EXTENSIONS)}"
        )
    rgb = np.asarray(rgb_linear)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"rgb_linear must be a non-empty HxWx3 array, got shape {rgb.shape}")
    if alpha is not None and np.shape(alpha) != rgb.shape[:2]:
        raise ValueError(f"alpha must be HxW {rgb.shape[:2]}, got shape {np.shape(alpha)}")
    depth = bit_depth if bit_depth is not None else (16 if ext in (".tif", ".tiff") else 8)
    if depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {depth}")
    if depth == 16 and ext not in (".png", ".tif", ".tiff"):
        raise InputError(f"Cannot save '{p}': {ext} files hold 8 bits per channel; use PNG or TIFF for 16 bits")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    if os.path.isdir(p):
        raise InputError(f"Cannot save '{p}': a folder with that name exists")

    color = from_linear(rgb, encoding, depth)
    alpha_enc = None if alpha is None else _encode_alpha(np.asarray(alpha), depth)
    writer = _WRITERS[ext]
    if encoding == "linear" and ext == ".png" and not icc_profile:
        writer = functools.partial(_write_png_then, insert_png_gamma1, writer)
    if landmarks is not None and ext in (".png", ".tif", ".tiff"):  # lossless: a digest of what we write
        record = carried_landmarks.encode_record(landmarks, carried_landmarks.pixel_digest(color, alpha_enc))
        if ext == ".png":
            writer = functools.partial(_write_png_then, functools.partial(
                insert_png_ztxt, keyword=carried_landmarks.KEYWORD, text=record), writer)
        else:
            writer = functools.partial(_write_tiff, note=record)
    elif landmarks is not None and ext in (".jpg", ".jpeg", ".webp"):  # lossy: a digest of what a decoder reads
        noted = _write_webp_noted if ext == ".webp" else _write_jpeg_noted  # an XMP packet / a comment
        writer = functools.partial(noted, lambda decoded, decoded_alpha: carried_landmarks.encode_record(
            landmarks, carried_landmarks.pixel_digest(decoded, decoded_alpha)))
    _atomic_write(p, ext, lambda f: writer(f, color, alpha_enc, icc_profile, quality))
