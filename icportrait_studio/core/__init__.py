"""Plain data shared by the engine, the job manager and the UI (no Qt, no torch)."""

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.request import EditRequest
from icportrait_studio.core.view import ViewPose

__all__ = ["EditRequest", "Light", "LightRig", "ViewPose"]
