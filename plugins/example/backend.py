"""A backend in a dozen lines: multiplies the photo by the rig's total intensity (no geometry at all).

Real backends follow ``icportrait_studio.pipeline.base.Backend``: ``available()`` and
``run(request, source, progress, cancel) -> Result``, called on the job manager's worker thread.
"""

from __future__ import annotations

import numpy as np

from icportrait_studio.pipeline.base import Result
from icportrait_studio.pipeline.progress import Progress


class GainBackend:
    name = "example-gain"

    def available(self) -> tuple[bool, str]:
        return True, "always available"

    def run(self, request, source, progress=lambda p: None, cancel=None) -> Result:
        gain = request.rig.ambient + sum(light.intensity for light in request.rig.lights if light.enabled)
        if cancel is not None:
            cancel.raise_if_cancelled()
        progress(Progress(1.0, "done"))
        image = np.clip(source.rgb * np.float32(gain), 0.0, 1.0).astype(np.float32)
        return Result(request=request, image=image, alpha=source.alpha, shading=None, info={"backend": self.name})
