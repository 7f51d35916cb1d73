"""In-process relighter for ../shared/bench/relight_eval.py (``--method py:bench/yale_relighter.py:relight``).

Same engine and defaults as ``icportrait relight`` (the CLI path is what the benchmark figures use);
this entry point just skips the per-call process start while iterating.
"""

from __future__ import annotations

import numpy as np

from icportrait_studio.api import relight as _relight
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.imaging.color import decode_to_linear, encode_from_linear


def relight(gray: np.ndarray, azimuth: float, elevation: float) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=2)
    lin = decode_to_linear(rgb)
    out = _relight(lin, LightRig(lights=(Light(azimuth=azimuth, elevation=elevation),)))  # the CLI's defaults
    return encode_from_linear(out.image, 8)
