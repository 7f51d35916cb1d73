"""Flattened 16-bit TIFF: what a raw developer or print workflow wants back, with the ICC profile kept.

Always 16 bits, whatever the source had: the relit result is computed in float, and 8 bits would
throw away the smooth shading gradients the relighting produces.
"""

from __future__ import annotations

from pathlib import Path

from icportrait_studio.imaging.io import load_image, save_image
from icportrait_studio.plugins.api import ExportDocument, FlatImage


class Tiff16Exporter:
    id = "tiff16"

    def write(self, path: Path, doc: ExportDocument) -> None:
        rgb, alpha = doc.flatten()
        save_image(path, rgb, alpha=alpha, bit_depth=16, icc_profile=doc.icc_profile)  # atomic

    def read_flat(self, path: Path) -> FlatImage:
        loaded = load_image(path)
        return FlatImage(loaded.rgb, loaded.alpha, loaded.bit_depth, loaded.icc_profile, list(loaded.warnings))
