"""OpenRaster (.ora): the open layered format Krita, GIMP and MyPaint read and write.

Layout (OpenRaster 0.0.5): ``mimetype`` first and stored uncompressed (so ``file``-style sniffers see
"image/openraster" at a fixed offset), ``stack.xml`` listing layers topmost first, one PNG per layer
under ``data/``, ``mergedimage.png`` (the composite) and ``Thumbnails/thumbnail.png`` (at most 256 px).
Layer PNGs keep the document's bit depth and carry its ICC profile (OpenRaster has no profile of
its own, PNG does). PNGs are stored, not deflated again: they are compressed already.
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from icportrait_studio.errors import InputError
from icportrait_studio.plugins.api import ExportDocument, ExportLayer, FlatImage
from icportrait_studio.plugins.export import atomic_write_file, decode_png, encode_png

MIMETYPE = b"image/openraster"
THUMBNAIL_MAX = 256


class OraExporter:
    id = "ora"

    def write(self, path: Path, doc: ExportDocument) -> None:
        w, h = doc.size
        root = ET.Element("image", {"version": "0.0.5", "w": str(w), "h": str(h), "xres": "72", "yres": "72"})
        stack = ET.SubElement(root, "stack")
        pngs: list[tuple[str, bytes]] = []
        for i, layer in enumerate(doc.layers):
            src = f"data/layer{i:03d}.png"
            pngs.append((src, encode_png(layer.pixels, layer.alpha, bit_depth=doc.bit_depth,
                                         icc_profile=doc.icc_profile)))
            # ElementTree escapes the name; insert at 0 because stack.xml lists the top layer first.
            stack.insert(0, ET.Element("layer", {
                "name": layer.name, "src": src, "x": "0", "y": "0", "opacity": f"{layer.opacity:.3f}",
                "visibility": "visible" if layer.visible else "hidden", "composite-op": "svg:src-over",
            }))
        stack_xml = ET.tostring(root, encoding="UTF-8", xml_declaration=True)
        flat, alpha = doc.flatten()
        merged = encode_png(flat, alpha, bit_depth=doc.bit_depth, icc_profile=doc.icc_profile)
        thumb = _thumbnail(flat, alpha, doc.icc_profile)

        def write_zip(tmp: str) -> None:
            with zipfile.ZipFile(tmp, "w") as zf:
                zf.writestr(zipfile.ZipInfo("mimetype"), MIMETYPE, compress_type=zipfile.ZIP_STORED)
                zf.writestr("stack.xml", stack_xml, compress_type=zipfile.ZIP_DEFLATED)
                for name, data in pngs:
                    zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
                zf.writestr("mergedimage.png", merged, compress_type=zipfile.ZIP_STORED)
                zf.writestr("Thumbnails/thumbnail.png", thumb, compress_type=zipfile.ZIP_STORED)

        atomic_write_file(path, write_zip, suffix=".ora")

    def read_flat(self, path: Path) -> FlatImage:
        """The merged image (every OpenRaster writer we care about stores one); else the stack composited."""
        with zipfile.ZipFile(path) as zf:
            _check_mimetype(zf, path)
            if "mergedimage.png" in zf.namelist():
                data = zf.read("mergedimage.png")
                rgb, alpha, depth = decode_png(data)
                return FlatImage(rgb, _opaque_none(alpha), depth, _png_icc(data))
        doc = read_document(path)
        rgb, alpha = doc.flatten()
        return FlatImage(rgb, alpha, doc.bit_depth, doc.icc_profile,
                         ["the file has no merged image; its layers were composited"])


def read_document(path: Path) -> ExportDocument:
    """The layer stack of an OpenRaster file (nested stacks flattened into the list, offsets applied)."""
    with zipfile.ZipFile(path) as zf:
        _check_mimetype(zf, path)
        root = ET.fromstring(zf.read("stack.xml"))
        w, h = int(root.get("w", "0")), int(root.get("h", "0"))
        top_stack = root.find("stack")
        if top_stack is None or w <= 0 or h <= 0:
            raise InputError(f"{path}: stack.xml has no stack or no size")
        layers: list[ExportLayer] = []
        depth, icc = 8, None
        for elem in reversed(list(top_stack.iter("layer"))):  # the file lists the top layer first
            data = zf.read(elem.get("src", ""))
            rgb, alpha, d = decode_png(data)
            depth, icc = max(depth, d), icc or _png_icc(data)
            x, y = int(float(elem.get("x", "0"))), int(float(elem.get("y", "0")))
            canvas, cover = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
            a = np.ones(rgb.shape[:2], np.float32) if alpha is None else alpha
            _paste(canvas, rgb, x, y)
            _paste(cover, a, x, y)
            layers.append(ExportLayer(elem.get("name", "Layer"), canvas, cover,
                                      elem.get("visibility", "visible") != "hidden",
                                      float(elem.get("opacity", "1"))))
    if not layers:
        raise InputError(f"{path}: the file has no layers")
    return ExportDocument((w, h), layers, icc, depth)


def _check_mimetype(zf: zipfile.ZipFile, path: Path) -> None:
    try:
        mimetype = zf.read("mimetype").strip()
    except KeyError:
        mimetype = b""
    if mimetype != MIMETYPE:
        raise InputError(f"{path}: not an OpenRaster file (mimetype {mimetype!r})")


def _paste(dst: np.ndarray, src: np.ndarray, x: int, y: int) -> None:
    h, w = dst.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + src.shape[1], w), min(y + src.shape[0], h)
    if x1 > x0 and y1 > y0:
        dst[y0:y1, x0:x1] = src[y0 - y:y1 - y, x0 - x:x1 - x]


def _opaque_none(alpha: np.ndarray | None) -> np.ndarray | None:
    return None if alpha is None or bool(np.all(alpha >= 1.0)) else alpha


def _png_icc(data: bytes) -> bytes | None:
    with Image.open(io.BytesIO(data)) as im:
        icc = im.info.get("icc_profile")
    return bytes(icc) if icc else None


def _thumbnail(flat: np.ndarray, alpha: np.ndarray | None, icc: bytes | None) -> bytes:
    h, w = flat.shape[:2]
    scale = min(1.0, THUMBNAIL_MAX / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(flat, size, interpolation=cv2.INTER_AREA) if scale < 1 else flat
    small_a = None if alpha is None else (cv2.resize(alpha, size, interpolation=cv2.INTER_AREA) if scale < 1
                                           else alpha)
    return encode_png(small, small_a, bit_depth=8, icc_profile=icc)
