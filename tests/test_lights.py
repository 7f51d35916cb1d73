"""Lights, rigs, presets: parsing, validation, JSON round trips."""

from __future__ import annotations

import json
import math

import pytest

from icportrait_studio.core.lights import (
    Light,
    LightRig,
    angles_from_direction,
    direction_from_angles,
    kelvin_to_rgb,
    parse_color,
)
from icportrait_studio.core.presets import list_presets, load_preset
from icportrait_studio.core.view import ViewPose
from icportrait_studio.errors import InputError


def test_direction_convention() -> None:
    x, y, z = direction_from_angles(90, 0)
    assert x == pytest.approx(1) and abs(y) < 1e-9 and abs(z) < 1e-9  # +azimuth: from the image's right
    x, y, z = direction_from_angles(0, 90)
    assert y == pytest.approx(1)  # +elevation: from above
    assert direction_from_angles(0, 0) == pytest.approx((0, 0, 1))  # toward the camera


@pytest.mark.parametrize(("az", "el"), [(0, 0), (50, 0), (-85, 20), (150, -30), (-120, 45)])
def test_angles_round_trip(az: float, el: float) -> None:
    assert angles_from_direction(*direction_from_angles(az, el)) == pytest.approx((az, el), abs=1e-6)


def test_parse_full_spec() -> None:
    light = Light.parse("azimuth=50,elevation=-10,intensity=2,color=#ffd8b0,size=0.3,kind=point,distance=1.5")
    assert (light.azimuth, light.elevation, light.intensity, light.size, light.kind, light.distance) == (
        50, -10, 2, 0.3, "point", 1.5)
    assert light.color == pytest.approx((1.0, 0xD8 / 255, 0xB0 / 255))


@pytest.mark.parametrize("spec", ["azimuth=abc", "azimuth", "foo=1", "elevation=95", "intensity=-1", "size=2",
                                  "kind=spot", "color=#12", "kind=point,distance=0.5", "azimuth=nan"])
def test_parse_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(InputError):
        Light.parse(spec)


def test_kelvin_is_warm_or_cool() -> None:
    warm, cool = kelvin_to_rgb(3200), kelvin_to_rgb(9000)
    assert warm[0] > warm[2] and cool[2] > cool[0]
    assert parse_color("3200K") == warm
    assert max(kelvin_to_rgb(6600)) == pytest.approx(1.0)


def test_rig_json_round_trip(tmp_path) -> None:
    rig = LightRig(lights=(Light(azimuth=30, color=(1.0, 0.5, 0.25)), Light(kind="point", distance=2.0)),
                   ambient=0.2, keep_original=0.3, relight_background=True, name="mine")
    path = tmp_path / "rig.json"
    path.write_text(rig.to_json())
    back = LightRig.load(path)
    assert back.to_dict() == rig.to_dict()
    assert back.lights[0].color == pytest.approx((1.0, 0.5, 0.25), abs=1 / 255)
    # the catchlight switch round-trips, and a rig saved before it existed moves them
    assert LightRig.from_dict({**rig.to_dict(), "catchlights": False}).catchlights is False
    old = rig.to_dict()
    del old["catchlights"]
    assert LightRig.from_dict(old).catchlights is True


def test_rig_file_errors(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        LightRig.load(bad)
    bad.write_text(json.dumps({"lights": [{"azimuth": 1, "wat": 2}]}))
    with pytest.raises(InputError, match="unknown light field"):
        LightRig.load(bad)
    with pytest.raises(InputError, match="not found"):
        LightRig.load(tmp_path / "missing.json")


@pytest.mark.parametrize("data", [
    {"lights": 5}, {"lights": [5]}, {"lights": ["azimuth=40"]}, {"lights": None}, {"lights": {"azimuth": 1}},
    {"lights": [{"azimuth": None}]}, {"lights": [{"azimuth": "x"}]}, {"lights": [{"color": 7}]},
    {"lights": [{"color": [1, 2]}]}, {"lights": [{"color": "#zzz"}]}, {"lights": [{"kind": 3}]},
    {"lights": [{"azimuth": float("nan")}]}, {"lights": [{"intensity": [1]}]}, {"ambient": "lots"},
    {"ambient": None}, {"keep_original": [0.5]}, {"name": 5}, {"specular": {}}, [1, 2], "rig", None, 3,
    {"lights": [{"color": [float("nan"), 1, 1]}]}, {"specular": float("nan")}, {"roughness": float("nan")},
    {"keep_original": float("nan")},
])
def test_every_malformed_rig_is_an_input_error(data: object) -> None:
    """A rig file or a project's rig is user data: whatever it holds, the answer is a clear InputError (the
    CLI's "error: ..." line), never a TypeError traceback."""
    try:
        rig = LightRig.from_dict(data)  # type: ignore[arg-type]
    except InputError:
        return  # refused with a message
    # accepted (a rig that is merely odd, a numeric name): then everything a render reads is a finite number
    numbers = [rig.ambient, rig.keep_original, rig.specular, rig.roughness]
    for light in rig.lights:
        numbers += [light.azimuth, light.elevation, light.intensity, light.size, light.distance, *light.color]
    assert all(math.isfinite(float(v)) for v in numbers)


def test_a_rig_path_that_is_not_a_readable_file_is_an_input_error(tmp_path) -> None:
    with pytest.raises(InputError, match="cannot read the rig file"):
        LightRig.load(tmp_path)  # a folder


def test_presets_present_and_valid() -> None:
    names = {p.name for p in list_presets()}
    assert {"rembrandt", "loop", "butterfly", "split", "broad", "short", "clamshell", "rim"} <= names
    for preset in list_presets():
        assert preset.rig.lights and preset.description
    rim = load_preset("RIM").rig
    assert any(math.cos(math.radians(lt.azimuth)) < 0 for lt in rim.lights)  # rim lights sit behind the head
    with pytest.raises(InputError, match="unknown preset"):
        load_preset("nope")


def test_a_damaged_user_preset_is_skipped_not_fatal(tmp_path, monkeypatch) -> None:
    """The preset list is read when the app starts: one hand-edited preset file must not stop it."""
    monkeypatch.setenv("ICPORTRAIT_CONFIG_DIR", str(tmp_path))
    folder = tmp_path / "presets"
    folder.mkdir()
    (folder / "broken.json").write_text(json.dumps({"name": "broken", "lights": 5}))
    (folder / "mine.json").write_text(json.dumps({"name": "mine", "lights": [{"azimuth": 30}]}))
    names = {p.name for p in list_presets()}
    assert "mine" in names and "broken" not in names and "loop" in names


def test_view_pose_limits() -> None:
    assert ViewPose().is_identity
    for bad in ({"yaw": None}, {"yaw": "x"}, {"pitch": [1]}, {"yaw": float("nan")}, {"lights_follow": 5}, [1], "v"):
        with pytest.raises(InputError):
            ViewPose.from_dict(bad)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        ViewPose(yaw=60)
    with pytest.raises(InputError):
        ViewPose(pitch=-40)
