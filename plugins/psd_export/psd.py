"""Layered PSD through psd-tools: one named pixel layer per export layer, bottom first.

The document keeps the source's bit depth (8 or 16 bits, which Photoshop, GIMP, Krita and Affinity
all open) and its ICC profile (image resource 1039), so colours look the same in the editor as in
the app. psd-tools also writes the merged composite, which viewers and Lightroom show.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from psd_tools import PSDImage
from psd_tools.constants import ColorMode, Resource
from psd_tools.psd.image_resources import ImageResource

from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear
from icportrait_studio.plugins.api import ExportDocument, FlatImage
from icportrait_studio.plugins.export import atomic_write_file


class PsdExporter:
    id = "psd"

    def write(self, path: Path, doc: ExportDocument) -> None:
        psd = PSDImage.new("RGB", doc.size, depth=doc.bit_depth)
        for layer in doc.layers:
            # Encode to the document's integer depth ourselves: psd-tools stores floats as given, and the
            # exact sRGB curve lives in imaging.color (tables, so 16 bits cost no more than 8).
            color = encode_from_linear(layer.pixels, doc.bit_depth)
            if layer.alpha is not None:
                top = 255 if doc.bit_depth == 8 else 65535
                a = np.rint(np.clip(layer.alpha, 0, 1) * top).astype(color.dtype)
                color = np.concatenate([color, a[..., None]], axis=2)
            pl = psd.create_pixel_layer_from_array(color, name=layer.name,
                                                   opacity=round(layer.opacity * 255))
            pl.visible = layer.visible
        if doc.icc_profile:
            psd.image_resources[Resource.ICC_PROFILE] = ImageResource(key=Resource.ICC_PROFILE,
                                                                      data=doc.icc_profile)
        atomic_write_file(path, psd.save, suffix=".psd")

    def read_flat(self, path: Path) -> FlatImage:
        psd = PSDImage.open(path)
        icc = psd.image_resources.get_data(Resource.ICC_PROFILE)
        warnings: list[str] = []
        if psd.color_mode == ColorMode.RGB:
            arr = psd.numpy()  # the stored composite when there is one, else a fresh composite; [0, 1] floats
            rgb, alpha = arr[..., :3], (arr[..., 3] if arr.shape[2] > 3 else None)
        else:  # grayscale, CMYK, ...: let psd-tools convert to sRGB
            warnings.append(f"the PSD is in {psd.color_mode.name} mode; it was converted to sRGB")
            im = psd.composite().convert("RGBA")
            arr = np.asarray(im, dtype=np.float32) / 255.0
            rgb, alpha, icc = arr[..., :3], arr[..., 3], None
        if alpha is not None and bool(np.all(alpha >= 1.0)):
            alpha = None
        return FlatImage(decode_to_linear(np.ascontiguousarray(rgb, np.float32)),
                         None if alpha is None else np.ascontiguousarray(alpha, np.float32),
                         16 if psd.depth >= 16 else 8, bytes(icc) if icc else None, warnings)
