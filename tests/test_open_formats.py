"""Every pattern the Open and Import dialogs offer is a format the loader reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from icportrait_studio.imaging.io import load_image
from icportrait_studio.ui.actions import IMAGE_PATTERNS, OPEN_FILTER


def test_each_offered_image_format_opens(tmp_path: Path) -> None:
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (24, 32, 3), dtype=np.uint8))
    patterns = IMAGE_PATTERNS.split()
    assert "*.pgm" in patterns and "*.avif" in patterns  # Yale's faces, phones' newer exports
    assert all(p in OPEN_FILTER for p in patterns)
    for pattern in patterns:
        path = tmp_path / f"probe{pattern[1:]}"
        if pattern == "*.pgm":
            img.convert("L").save(path)
        else:
            img.save(path, format="JPEG2000" if pattern == "*.jp2" else None)
        loaded = load_image(path)
        assert loaded.rgb.shape == (24, 32, 3), pattern
