"""The preferences file is the user's (hand-edited, synced, from another version): whatever it holds, the app
starts, opens photos, remembers them, and shows its dialogs with defaults where a value makes no sense."""

from __future__ import annotations

import json
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from test_ui_app import SAMPLE, dialogs, isolated_config, make_window, open_sample

from icportrait_studio.ui.settings import Settings

__all__ = ["dialogs", "isolated_config"]  # fixtures re-used from test_ui_app

GARBAGE = [5, "x", None, {"a": 1}, True, -1.5, [1, None]]
KEYS = ["recent_files", "recent_linear", "window_geometry", "window_state", "overlay_mesh", "batch_folder",
        "batch_type", "batch_suffix", "last_open_dir", "last_project_dir", "last_export_dir", "diffusion"]


@pytest.mark.parametrize("value", GARBAGE)
def test_settings_read_wrong_types_as_unset(tmp_path: Path, value: object) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"recent_files": value, "recent_linear": value, "last_open_dir": value}))
    settings = Settings(path)
    assert settings.recent_files() == [] and settings.recent_encoding(str(SAMPLE)) == "auto"
    assert os.path.isdir(settings.folder("last_open_dir"))
    settings.add_recent(str(SAMPLE), "linear")
    again = Settings(path)
    assert again.recent_files() == [str(SAMPLE)] and again.recent_encoding(str(SAMPLE)) == "linear"


@pytest.mark.parametrize("value", GARBAGE[:4])
def test_the_app_works_with_a_garbled_settings_file(qtbot, isolated_config: Path, dialogs, value: object) -> None:  # type: ignore[no-untyped-def]
    isolated_config.mkdir(parents=True, exist_ok=True)
    data: dict = {key: value for key in KEYS}
    data["diffusion"] = {"model_dir": value, "allow_cpu": value, "preview_steps": value, "full_steps": value}
    (isolated_config / "settings.json").write_text(json.dumps(data))
    win = make_window(qtbot)
    try:
        open_sample(win, qtbot)
        win._fill_recent()
        assert next(a.text() for a in win.recent_menu.actions()).endswith("astronaut.png")  # remembered
        models = win.ext.models.show_dialog(modal=False)
        steps = (value, value) if value == 5 else (12, 28)  # 5 is a fine step count; the rest give the defaults
        assert (models.preview_steps.value(), models.full_steps.value()) == steps
        assert not models.allow_cpu.isChecked() and models.folder.text() in ("", "x")
        models.close()
        assert not dialogs["shown"]  # no error dialog either
    finally:
        win.close()
