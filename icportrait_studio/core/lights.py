"""Lights and light rigs: the plain data every backend, the CLI and the UI agree on.

Directions live in camera space (+x image right, +y up, +z toward the camera); azimuth and elevation
are in degrees, +azimuth = light from the image's right, +elevation = light from above.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

from icportrait_studio.errors import InputError

LightKind = Literal["directional", "point"]


def direction_from_angles(azimuth: float, elevation: float) -> tuple[float, float, float]:
    """Unit vector pointing from the subject toward the light, in camera space."""
    az, el = math.radians(azimuth), math.radians(elevation)
    return (math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az))


def angles_from_direction(x: float, y: float, z: float) -> tuple[float, float]:
    """Inverse of :func:`direction_from_angles` (azimuth, elevation in degrees)."""
    norm = math.sqrt(x * x + y * y + z * z) or 1.0
    x, y, z = x / norm, y / norm, z / norm
    return math.degrees(math.atan2(x, z)), math.degrees(math.asin(max(-1.0, min(1.0, y))))


def parse_color(text: str) -> tuple[float, float, float]:
    """'#ffd8b0', 'ffd8b0' or '3200K' -> linear-ish RGB multipliers in [0, 1]."""
    t = text.strip().lower()
    if t.endswith("k"):
        try:
            return kelvin_to_rgb(float(t[:-1]))
        except ValueError as exc:
            raise InputError(f"bad colour temperature {text!r}") from exc
    t = t.lstrip("#")
    if len(t) != 6 or any(c not in "0123456789abcdef" for c in t):
        raise InputError(f"bad colour {text!r}: use #rrggbb or a temperature like 3200K")
    return tuple(int(t[i : i + 2], 16) / 255.0 for i in (0, 2, 4))  # type: ignore[return-value]


def color_to_hex(color: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{max(0, min(255, round(c * 255))):02x}" for c in color)


def kelvin_to_rgb(kelvin: float) -> tuple[float, float, float]:
    """Blackbody colour (Tanner Helland's fit), normalised so the largest channel is 1."""
    if not 1000 <= kelvin <= 40000:
        raise InputError(f"colour temperature {kelvin:g}K is outside 1000K..40000K")
    t = kelvin / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * math.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * math.log(t - 10) - 305.0447927307)
    rgb = [max(0.0, min(255.0, v)) for v in (r, g, b)]
    m = max(rgb) or 1.0
    return (rgb[0] / m, rgb[1] / m, rgb[2] / m)


@dataclass(frozen=True)
class Light:
    """One light of a rig.

    ``size`` is the angular softness in [0, 1]: 0 is a hard point-like source, 1 a very large soft box
    (wider wrap, softer shadow edges). ``distance`` is used by point lights only, in head radii
    measured from the head's centre.
    """

    azimuth: float = 0.0
    elevation: float = 0.0
    intensity: float = 1.0
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: float = 0.1
    kind: LightKind = "directional"
    distance: float = 3.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("directional", "point"):
            raise InputError(f"light kind must be 'directional' or 'point', not {self.kind!r}")
        for name in ("azimuth", "elevation", "intensity", "size", "distance"):
            if not math.isfinite(getattr(self, name)):
                raise InputError(f"light {name} must be a finite number")
        if not -90.0 <= self.elevation <= 90.0:
            raise InputError(f"elevation {self.elevation:g} is outside -90..90 degrees")
        if self.intensity < 0:
            raise InputError("light intensity must not be negative")
        if not 0.0 <= self.size <= 1.0:
            raise InputError(f"light size {self.size:g} is outside 0..1")
        if self.kind == "point" and self.distance <= 1.0:
            raise InputError("a point light's distance must be more than 1 (head radii)")
        object.__setattr__(self, "color", tuple(float(c) for c in self.color))
        if len(self.color) != 3 or any(not (math.isfinite(c) and c >= 0) for c in self.color):
            raise InputError("light colour must be three non-negative numbers")

    @property
    def direction(self) -> tuple[float, float, float]:
        return direction_from_angles(self.azimuth, self.elevation)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["color"] = color_to_hex(self.color)
        return d

    @classmethod
    def from_dict(cls, data: dict) -> Light:
        if not isinstance(data, dict):
            raise InputError(f"a light must be a JSON object, not {type(data).__name__}")
        data = dict(data)
        unknown = set(data) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InputError(f"unknown light field(s): {', '.join(sorted(unknown))}")
        if isinstance(data.get("color"), str):
            data["color"] = parse_color(data["color"])
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad light: {exc}") from exc

    @classmethod
    def parse(cls, spec: str) -> Light:
        """Parse the CLI form ``azimuth=50,elevation=0,intensity=1,color=#ffd8b0,size=0.1,kind=point``."""
        values: dict[str, object] = {}
        aliases = {"az": "azimuth", "el": "elevation", "colour": "color", "i": "intensity"}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            if "=" not in part:
                raise InputError(f"bad light {spec!r}: expected key=value pairs, got {part!r}")
            key, value = (s.strip() for s in part.split("=", 1))
            key = aliases.get(key.lower(), key.lower())
            if key == "color":
                values[key] = parse_color(value)
            elif key == "kind":
                values[key] = value.lower()
            elif key in ("azimuth", "elevation", "intensity", "size", "distance"):
                try:
                    values[key] = float(value)
                except ValueError as exc:
                    raise InputError(f"bad light {spec!r}: {key} must be a number") from exc
            else:
                raise InputError(f"bad light {spec!r}: unknown key {key!r}")
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class LightRig:
    """A set of lights plus the two global terms.

    ``ambient`` is a uniform fill (in the same units as a light's intensity). ``keep_original`` mixes
    back the photo's own lighting (0 = fully relit, 1 = the original photo).
    """

    lights: tuple[Light, ...] = field(default_factory=tuple)
    ambient: float = 0.05
    keep_original: float = 0.0
    relight_background: bool = False
    specular: float = 0.15
    roughness: float = 0.45
    name: str = ""
    # move the eyes' catchlights to where the rig's lights reflect (False: keep the photo's own)
    catchlights: bool = True
    # where the rig brightens the face far beyond the photo's light, keep the photo's own fine skin detail
    # there (a mole, a scar) rather than the fill's (the mirror side's): see ``lighting.relight.GAIN_TRUST``
    keep_texture: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "lights", tuple(self.lights))
        if self.ambient < 0 or not math.isfinite(self.ambient):
            raise InputError("ambient must be a non-negative number")
        if not 0.0 <= self.keep_original <= 1.0:
            raise InputError("keep-original must be in 0..1")
        if not (math.isfinite(self.specular) and self.specular >= 0):
            raise InputError("specular must be a non-negative number")
        if not 0.02 <= self.roughness <= 1.0:
            raise InputError("roughness must be in 0.02..1")

    def with_lights(self, lights: list[Light] | tuple[Light, ...]) -> LightRig:
        return replace(self, lights=tuple(lights))

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "lights": [light.to_dict() for light in self.lights],
            "ambient": self.ambient,
            "keep_original": self.keep_original,
            "relight_background": self.relight_background,
            "specular": self.specular,
            "roughness": self.roughness,
            "catchlights": self.catchlights,
            "keep_texture": self.keep_texture,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LightRig:
        if not isinstance(data, dict):
            raise InputError("a rig must be a JSON object")
        known = {"name", "lights", "ambient", "keep_original", "relight_background", "specular", "roughness",
                 "catchlights", "keep_texture", "description"}
        unknown = set(data) - known
        if unknown:
            raise InputError(f"unknown rig field(s): {', '.join(sorted(unknown))}")
        kwargs = {k: v for k, v in data.items() if k not in ("lights", "description")}
        if not isinstance(data.get("lights", []), list):
            raise InputError("a rig's lights must be a JSON list of lights")
        lights = tuple(Light.from_dict(ld) for ld in data.get("lights", []))
        try:
            return cls(lights=lights, **kwargs)
        except (TypeError, ValueError) as exc:
            raise InputError(f"bad rig: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def load(cls, path: str | Path) -> LightRig:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"rig file not found: {path}") from exc
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"rig file {path} is not valid JSON: {exc}") from exc
        except OSError as exc:  # a folder, no permission, a device
            raise InputError(f"cannot read the rig file {path}: {exc.strerror or exc}") from exc
        return cls.from_dict(data)
