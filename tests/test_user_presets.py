"""The user's own presets: saved from the app into the settings folder, listed with the bundled ones."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QInputDialog, QMessageBox

from icportrait_studio.cli import add_rig_arguments, rig_from_args
from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.presets import list_presets, save_user_preset, user_presets_dir
from icportrait_studio.errors import InputError
from icportrait_studio.ui.main_window import MainWindow


@pytest.fixture
def clean_user_presets():
    folder = user_presets_dir()
    yield folder
    for p in folder.glob("*.json") if folder.is_dir() else []:
        p.unlink()


def test_saved_preset_is_listed_and_the_cli_finds_it(clean_user_presets: Path) -> None:
    rig = LightRig(lights=(Light(azimuth=-70, elevation=15, intensity=1.4), Light(azimuth=60, intensity=0.2)),
                   ambient=0.08)
    path = save_user_preset("  My   window key ", rig)
    assert path.parent == clean_user_presets and path.name == "My window key.json"
    found = {p.name: p for p in list_presets()}
    assert "My window key" in found and "loop" in found  # alongside the bundled ones
    assert found["My window key"].rig.lights == rig.lights and found["My window key"].rig.ambient == 0.08
    p = argparse.ArgumentParser()
    add_rig_arguments(p)
    assert rig_from_args(p.parse_args(["--preset", "My window key"])).lights == rig.lights
    # saved again under the same name: replaced, not duplicated
    save_user_preset("My window key", LightRig(lights=(Light(azimuth=10),)))
    assert [q.rig.lights[0].azimuth for q in list_presets() if q.name == "My window key"] == [10]
    assert json.loads(path.read_text())["name"] == "My window key"
    for bad in ("", "   ", "a/b", "..", "x" * 61):
        with pytest.raises(InputError):
            save_user_preset(bad, rig)
    with pytest.raises(InputError, match="bundled"):
        save_user_preset("loop", rig)  # the bundled ones keep their names


def test_save_rig_as_preset_from_the_lighting_menu(qtbot, monkeypatch, clean_user_presets: Path) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("Soft window", True))
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: asked.append(a[2]) or QMessageBox.StandardButton.Yes)
    win = MainWindow()
    qtbot.addWidget(win)
    panel = win.light_panel
    panel.setRig(LightRig(lights=(Light(azimuth=-50, elevation=20, size=0.6),)))
    lighting = next(a.menu() for a in win.menuBar().actions() if a.text() == "&Lighting")
    assert win.actions_.save_preset in lighting.actions()
    win.actions_.save_preset.trigger()
    assert (clean_user_presets / "Soft window.json").is_file()
    names = [panel.preset_combo.itemText(i) for i in range(panel.preset_combo.count())]
    assert "Soft window" in names and panel.preset_combo.currentText() == "Soft window"
    assert asked == []  # a new name: nothing to confirm
    panel.setRig(LightRig(lights=(Light(azimuth=30),)))
    win.apply_preset("Soft window")
    assert panel.rig().lights[0].azimuth == -50 and panel.rig().lights[0].size == 0.6
    win.actions_.save_preset.trigger()  # the same name again: asked before replacing
    assert asked and "Soft window" in asked[0]
    win.close()
