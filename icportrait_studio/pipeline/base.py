"""What every backend takes and returns, so the job manager, CLI and UI never care which one runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from icportrait_studio.core.request import EditRequest
from icportrait_studio.pipeline.progress import CancelToken, ProgressFn


@dataclass
class SourceImage:
    """The photo a request refers to: linear RGB float32 and optional straight alpha."""

    image_id: str
    rgb: np.ndarray
    alpha: np.ndarray | None = None
    landmarks: np.ndarray | None = None  # (N, 3) pixels, carried in the file by an earlier edit: used, not detected
    tone: float | None = None  # the profile's gamma to relight in, when sRGB's curve is wrong for it (scene_tone.py)


@dataclass
class Result:
    """A rendered edit: linear RGB at the requested quality, the shading used, and a report."""

    request: EditRequest
    image: np.ndarray  # float32 HxWx3 linear
    alpha: np.ndarray | None
    shading: np.ndarray | None  # float32 hxwx3 target shading (shading size), for overlays
    info: dict = field(default_factory=dict)  # timings, warnings, source light, backend specifics
    landmarks: np.ndarray | None = None  # the face's landmarks as they lie in ``image`` (moved by a view change)


class Backend(Protocol):
    """A relighting backend. ``run`` is called on the job manager's worker thread only."""

    name: str

    def available(self) -> tuple[bool, str]:
        """Whether the backend can run here, and if not, why (shown to the user)."""
        ...

    def run(self, request: EditRequest, source: SourceImage, progress: ProgressFn, cancel: CancelToken) -> Result:
        ...
