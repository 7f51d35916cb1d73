"""Being someone else's external editor (Lightroom "Edit In", darktable, Capture One).

The host hands over a file path and expects the result written back to that same path, in the same
format, when we save. ``EditTarget`` is the Qt-free half of that: it opens the file, remembers what
must be kept (bit depth, ICC profile, alpha, format), and writes back atomically, so the host, which
may be watching the file, never sees half a TIFF. A 16-bit TIFF stays 16-bit: Lightroom would
otherwise replace the user's 16-bit master with an 8-bit one.

The desktop app uses it for ``icportrait edit FILE`` (``run_app(path, edit_target=EditTarget)``), the
headless fallback in ``commands/edit.py`` uses it directly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from icportrait_studio.errors import InputError
from icportrait_studio.plugins.api import ExportDocument, ExportLayer, FlatImage
from icportrait_studio.plugins.registry import PluginRegistry

LAYERED = (".psd", ".ora")
FLAT = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".webp")


@dataclass
class EditTarget:
    path: Path
    image: FlatImage

    @classmethod
    def open(cls, path: str | os.PathLike[str], registry: PluginRegistry | None = None) -> EditTarget:
        p = Path(path)
        ext = p.suffix.lower()
        if ext not in LAYERED + FLAT:
            raise InputError(f"cannot edit '{p}': {ext or 'files without an extension'} cannot be written back; "
                             f"use one of {', '.join(LAYERED + FLAT)}")
        if not p.is_file():
            raise InputError(f"cannot edit '{p}': file not found")
        if ext in LAYERED:
            from icportrait_studio.plugins.export import read_flat

            return cls(p, read_flat(p, registry))
        from icportrait_studio.imaging.io import load_image

        loaded = load_image(p)
        return cls(p, FlatImage(loaded.rgb, loaded.alpha, loaded.bit_depth, loaded.icc_profile,
                                list(loaded.warnings)))

    @property
    def bit_depth(self) -> int:
        """What write_back keeps: 16 for 16-bit (and float) TIFF/PNG, 8 for the rest."""
        ext = self.path.suffix.lower()
        if ext in (".jpg", ".jpeg", ".webp"):
            return 8
        return 16 if self.image.bit_depth >= 16 else 8

    def write_back(self, rgb_linear: np.ndarray, alpha: np.ndarray | None = None, *,
                   layers: list[ExportLayer] | None = None, registry: PluginRegistry | None = None) -> None:
        """Replace the file atomically with the result. Alpha defaults to the original's. Layered
        targets (PSD/ORA) get the original under the result, or ``layers`` when given."""
        rgb = np.asarray(rgb_linear, dtype=np.float32)
        if rgb.shape[:2] != self.image.rgb.shape[:2]:
            raise InputError(f"the result is {rgb.shape[1]}x{rgb.shape[0]}, the file is "
                             f"{self.image.rgb.shape[1]}x{self.image.rgb.shape[0]}: the host expects the same size")
        alpha = self.image.alpha if alpha is None else alpha
        ext = self.path.suffix.lower()
        if ext in LAYERED:
            from icportrait_studio.plugins.export import export_document

            stack = layers or [ExportLayer("Original", self.image.rgb, self.image.alpha, kind="base"),
                               ExportLayer("IC-Portrait", rgb, alpha, kind="relit")]
            encoding = getattr(self.image, "encoding", "srgb")
            icc = self.image.icc_profile if encoding == "srgb" else None  # layers are sRGB-encoded
            export_document(self.path, ExportDocument.from_layers(stack, icc_profile=icc,
                                                                  bit_depth=self.bit_depth), registry)
            return
        from icportrait_studio.imaging.io import save_image

        save_image(self.path, rgb, alpha=alpha, bit_depth=self.bit_depth, icc_profile=self.image.icc_profile,
                   encoding=getattr(self.image, "encoding", "srgb"))
