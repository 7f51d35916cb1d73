"""The one request format both backends take."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

from icportrait_studio.core.lights import LightRig
from icportrait_studio.core.view import ViewPose

Quality = Literal["preview", "full"]

PREVIEW_MAX_SIDE = 512

_ids = itertools.count(1)


@dataclass(frozen=True)
class EditRequest:
    """What to render for one image: a rig, a view, which backend, at which quality.

    ``image_id`` names the document (its analysis is cached under it). ``preview`` renders at most
    ``PREVIEW_MAX_SIDE`` pixels on the long side, for interactive drags.
    """

    image_id: str
    rig: LightRig
    view: ViewPose = field(default_factory=ViewPose)
    backend: str = "physical"
    quality: Quality = "full"
    seed: int = 0
    request_id: int = field(default_factory=lambda: next(_ids))

    @property
    def max_side(self) -> int | None:
        return PREVIEW_MAX_SIDE if self.quality == "preview" else None
