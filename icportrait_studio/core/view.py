"""Head pose change requested by the view sphere or ``icportrait view``."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from icportrait_studio.errors import InputError

LightAnchor = Literal["camera", "head"]

MAX_YAW = 45.0
MAX_PITCH = 30.0


@dataclass(frozen=True)
class ViewPose:
    """A rotation of the head relative to the photo.

    +yaw turns the face toward the image's right, +pitch tilts the face up. ``lights_follow`` says
    whether the rig is fixed to the camera (studio lights) or turns with the head.
    """

    yaw: float = 0.0
    pitch: float = 0.0
    lights_follow: LightAnchor = "camera"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.yaw) and math.isfinite(self.pitch)):
            raise InputError("yaw and pitch must be finite numbers")
        if abs(self.yaw) > MAX_YAW:
            raise InputError(f"yaw {self.yaw:g} is outside -{MAX_YAW:g}..{MAX_YAW:g} degrees")
        if abs(self.pitch) > MAX_PITCH:
            raise InputError(f"pitch {self.pitch:g} is outside -{MAX_PITCH:g}..{MAX_PITCH:g} degrees")
        if self.lights_follow not in ("camera", "head"):
            raise InputError("lights_follow must be 'camera' or 'head'")

    @property
    def is_identity(self) -> bool:
        return abs(self.yaw) < 1e-6 and abs(self.pitch) < 1e-6

    def to_dict(self) -> dict:
        return {"yaw": self.yaw, "pitch": self.pitch, "lights_follow": self.lights_follow}

    @classmethod
    def from_dict(cls, data: dict) -> ViewPose:
        if not isinstance(data, dict):
            raise InputError("a view must be a JSON object")
        try:
            yaw, pitch = float(data.get("yaw", 0.0)), float(data.get("pitch", 0.0))
        except (TypeError, ValueError) as exc:
            raise InputError(f"yaw and pitch must be numbers ({exc})") from None
        return cls(yaw, pitch, data.get("lights_follow", "camera"))
