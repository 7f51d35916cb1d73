"""An exporter that writes what the layers are, not their pixels: handy for checking a pipeline."""

from __future__ import annotations

import json
from pathlib import Path

from icportrait_studio.imaging.atomic import atomic_write_text
from icportrait_studio.plugins.api import ExportDocument


class LayerSummaryExporter:
    def write(self, path: Path, doc: ExportDocument) -> None:
        layers = [{"name": layer.name, "kind": layer.kind, "visible": layer.visible, "opacity": layer.opacity,
                   "mean_linear_rgb": [round(float(v), 5) for v in layer.pixels.reshape(-1, 3).mean(axis=0)]}
                  for layer in doc.layers]
        summary = {"size": list(doc.size), "bit_depth": doc.bit_depth, "has_icc": doc.icc_profile is not None,
                   "layers": layers}
        atomic_write_text(path, json.dumps(summary, indent=2))
