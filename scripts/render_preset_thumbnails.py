"""Render a thumbnail per preset (the sample portrait's head, relit) into resources/presets/thumbnails/.

    .venv/bin/python scripts/render_preset_thumbnails.py

The README's preset table and the app's preset menu show these files.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icportrait_studio.api import relight  # noqa: E402
from icportrait_studio.core.presets import list_presets  # noqa: E402
from icportrait_studio.imaging.io import load_image, save_image  # noqa: E402

SIZE = 160


def main() -> None:
    import cv2

    img = load_image(ROOT / "resources/samples/astronaut.png").rgb
    out_dir = ROOT / "resources/presets/thumbnails"
    out_dir.mkdir(parents=True, exist_ok=True)
    crop = (slice(0, 280), slice(90, 370))  # the head and shoulders of the sample
    for preset in list_presets():
        res = relight(img, preset.rig, image_id="thumbnail-sample")
        thumb = cv2.resize(np.ascontiguousarray(res.image[crop]), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
        save_image(out_dir / f"{preset.name}.png", thumb)
        print(out_dir / f"{preset.name}.png")


if __name__ == "__main__":
    main()
