"""Engine features wired into the window: real view change, identity guard, layered export, Edit in…,
edit mode (``icportrait edit``), Settings → Models, latent previews, the plugins dialog. Offscreen."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtWidgets import QApplication
from test_ui_app import SAMPLE, WAIT_MS, dialogs, full_render_shown, isolated_config, make_window, open_sample

from icportrait_studio.core.request import EditRequest
from icportrait_studio.imaging.io import load_image, save_image
from icportrait_studio.pipeline.progress import Progress
from icportrait_studio.ui.main_window import MainWindow
from icportrait_studio.ui.work import RenderOutcome

__all__ = ["dialogs", "isolated_config"]  # fixtures re-used from test_ui_app


@pytest.fixture
def window(qtbot, dialogs):  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    yield win
    win.close()


def _wait_full(win: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    qtbot.waitUntil(lambda: full_render_shown(win), timeout=WAIT_MS)


def test_view_change_reposes_the_head_and_undo_restores_it(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    assert "does not change the head" not in window.view_panel.toolTip() + window.view_dock.toolTip()
    front = window.doc.relit_layer.pixels.copy()
    window.view_panel.follow_check.setChecked(True)  # the checkbox reaches the request
    _wait_full(window, qtbot)
    assert window.doc.view.lights_follow == "head"
    window.view_panel.yaw_spin.setValue(20.0)  # viewChanged (preview) + viewFinished (full + undo step)
    qtbot.waitUntil(lambda: full_render_shown(window) and window.doc.view.yaw == 20.0, timeout=WAIT_MS)
    assert window.undo_stack.undoText().startswith("View: yaw +20")
    hit = window.renderer.cached(window.doc.rig, window.doc.view, window.doc.backend)
    assert hit.request.view.yaw == 20.0 and hit.request.view.lights_follow == "head"
    turned = window.doc.relit_layer.pixels
    assert turned.shape == front.shape and np.abs(turned - front).mean() > 0.005  # the head moved
    assert window.canvas.displayed_request_id == hit.request.request_id  # and the canvas shows it
    assert "does not change" not in window.statusBar().currentMessage()
    window.undo_stack.undo()
    assert window.doc.view.yaw == 0.0 and window.view_panel.view() == (0.0, 0.0)
    _wait_full(window, qtbot)
    assert np.abs(window.doc.relit_layer.pixels - front).max() < 1e-4


def test_identity_distance_is_shown_and_warns_above_threshold(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.identity import IDENTITY_WARN

    open_sample(window, qtbot)
    doc, ind = window.doc, window.ext.identity

    def apply(info: dict) -> None:
        img = doc.relit_layer.pixels
        req = EditRequest(doc.id, doc.rig, doc.view, doc.backend, quality="full")
        window.renderer._apply(RenderOutcome(req, img, np.zeros((*img.shape[:2], 4), np.uint8), None, info),
                               force=True)

    apply({"identity_distance": 0.31})
    assert ind.isVisible() and ind.text() == "Identity distance 0.31" and not ind.warning
    assert window.props_panel.value("Identity", "Identity distance") == "0.31"
    window.statusBar().showMessage("Saved portrait.icps")
    apply({"identity_distance": 0.30})
    assert window.statusBar().currentMessage() == "Saved portrait.icps"  # the label holds it; no repeat
    apply({"identity_distance": IDENTITY_WARN + 0.12})
    assert ind.warning and "⚠" in ind.text() and "#ffb347" in ind.styleSheet()
    assert window.statusBar().currentMessage().startswith("Warning: Identity distance 0.62 is above 0.50")
    assert window.props_panel.value("Identity", "Status").startswith("⚠")
    apply({"identity_distance": None})
    assert ind.text() == "Identity —" and not ind.warning
    assert window.props_panel.value("Identity", "Identity distance") == "not available"


def test_identity_read_out_is_pending_while_a_preview_shows(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    """Dragging the view sphere shows previews; the distance of the last full result must not sit next
    to them as if it were theirs."""
    open_sample(window, qtbot)
    _wait_full(window, qtbot)
    ind = window.ext.identity
    assert ind.text().startswith("Identity distance")
    window.view_panel.viewChanged.emit(-20.0, 0.0)  # what a drag sends (previews only)
    qtbot.waitUntil(lambda: ind.pending, timeout=WAIT_MS)
    assert ind.text() == "Identity …"
    window.view_panel.yaw_spin.setValue(-20.0)  # the drag ends: a full render measures it again
    qtbot.waitUntil(lambda: full_render_shown(window) and window.doc.view.yaw == -20.0 and not ind.pending,
                    timeout=WAIT_MS)
    assert ind.text().replace("⚠ ", "").startswith("Identity distance")


def test_export_layered_psd_and_ora(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from psd_tools import PSDImage

    open_sample(window, qtbot)
    assert window.ext.layered.action.isEnabled()
    file_menu = window.menuBar().actions()[0].menu()
    assert "Export &Layered…" in [a.text() for a in file_menu.actions()]
    psd, ora = tmp_path / "out.psd", tmp_path / "out.ora"
    window.ext.layered.export(str(psd))
    window.ext.layered.export(str(ora))
    qtbot.waitUntil(lambda: psd.exists() and ora.exists() and window.jobs_idle(), timeout=WAIT_MS)
    names = [layer.name for layer in PSDImage.open(psd)]
    assert names == ["Original", "Relit", "Shading"] and PSDImage.open(psd).size == (512, 512)
    with zipfile.ZipFile(ora) as z:
        assert z.namelist()[0] == "mimetype" and z.read("mimetype") == b"image/openraster"
        stack = z.read("stack.xml").decode()
    for name in ("Original", "Relit", "Shading"):
        assert f'name="{name}"' in stack


FAKE_EDITOR = """
import sys, time
import numpy as np, tifffile
path = sys.argv[1]
img = tifffile.imread(path)
time.sleep(0.2)
img[: img.shape[0] // 2] = img[: img.shape[0] // 2] // 2   # darken the top half
tifffile.imwrite(path, img)
"""


def test_edit_in_round_trip_adds_a_layer(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.plugins.editors import custom_editor

    open_sample(window, qtbot)
    window.ext.edit_in._fill_menu()
    texts = [a.text() for a in window.ext.edit_in.menu.actions()]
    assert texts[-1] == "Other command…"
    script = tmp_path / "fake_editor.py"
    script.write_text(FAKE_EDITOR)
    editor = custom_editor("Fake", [sys.executable, str(script), "{file}"], "tif")
    n_layers, n_undo = len(window.doc.layers), window.undo_stack.count()
    with qtbot.waitSignal(window.ext.edit_in.layerAdded, timeout=WAIT_MS) as blocker:
        window.ext.edit_in.start(editor, workdir=tmp_path / "edit", poll_interval=0.05, debounce=0.2)
    assert blocker.args == ["Edited in Fake #1"]
    layer = window.doc.layers[-1]
    assert len(window.doc.layers) == n_layers + 1 and layer.kind == "imported" and layer.name == "Edited in Fake #1"
    assert window.undo_stack.count() == n_undo + 1
    assert window.undo_stack.undoText() == "Import layer 'Edited in Fake #1'"
    relit = window.doc.relit_layer.pixels
    h = relit.shape[0]
    assert layer.pixels[: h // 2 - 4].mean() < 0.6 * relit[: h // 2 - 4].mean()  # the editor's change came back
    assert np.abs(layer.pixels[h // 2 + 4:] - relit[h // 2 + 4:]).mean() < 0.01
    qtbot.waitUntil(lambda: window.layers_panel.row(layer.uid) is not None, timeout=WAIT_MS)
    window.undo_stack.undo()
    assert len(window.doc.layers) == n_layers


def test_edit_mode_writes_16_bit_tiff_back(qtbot, dialogs, tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import tifffile

    from icportrait_studio.plugins.edit_target import EditTarget

    src = load_image(SAMPLE)
    photo = tmp_path / "photo.tif"
    save_image(photo, src.rgb, bit_depth=16)
    quits: list[int] = []
    monkeypatch.setattr(QApplication, "quit", lambda: quits.append(1))
    win = make_window(qtbot)
    with qtbot.waitSignal(win.documentOpened, timeout=WAIT_MS):
        win.ext.edit_mode.enter(EditTarget.open(photo), exit_on_close=True)
    _wait_full(win, qtbot)
    assert "editing for another app" in win.windowTitle() and win.doc.bit_depth == 16
    assert win.actions_.save.text() == "&Save to photo.tif"
    win.apply_preset("rembrandt")
    _wait_full(win, qtbot)
    assert win.is_dirty()
    win.actions_.save.trigger()
    qtbot.waitUntil(lambda: win.ext.edit_mode.writes == 1 and win.jobs_idle(), timeout=WAIT_MS)
    assert not win.is_dirty() and not (tmp_path / "photo.icps").exists()
    raw = tifffile.imread(photo)
    assert raw.dtype == np.uint16 and raw.shape == (512, 512, 3)
    back = load_image(photo)
    assert back.bit_depth == 16
    expected = np.clip(win.doc.flatten(), 0, 1)
    assert np.abs(back.rgb - expected).max() < 6e-5 and np.abs(back.rgb - src.rgb).mean() > 0.01
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".") or p.suffix == ".tmp"] == []
    win.close()
    assert quits == [1]  # --exit-on-close


def test_models_dialog_checks_folder_and_backend_combo(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    empty = tmp_path / "empty-model"
    empty.mkdir()
    dlg = window.ext.models.show_dialog()
    qtbot.waitExposed(dlg)
    dlg.folder.setText(str(empty))
    check = dlg.validate()
    assert check is not None and not check.ok
    assert "incomplete" in dlg.status.toolTip() and dlg.status.text().startswith("Incomplete")
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert part in dlg.missing.text()
    dlg.accept()
    assert window.settings.get("diffusion")["model_dir"] == str(empty)

    def diffusion_item():  # type: ignore[no-untyped-def]
        combo = window.backend_combo
        i = combo.findData("diffusion")
        return None if i < 0 else combo.model().item(i)

    qtbot.waitUntil(lambda: diffusion_item() is not None and window.jobs_idle(), timeout=WAIT_MS)
    item = diffusion_item()
    assert not item.isEnabled() and item.toolTip()  # listed, disabled, the reason as tooltip
    assert window.backend_combo.current() == "physical"


@pytest.mark.slow
def test_models_dialog_accepts_a_tiny_model(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("torch")
    from icportrait_studio.model.tiny import save_tiny_model

    folder = save_tiny_model(tmp_path / "tiny", seed=2, layout="icportrait")
    dlg = window.ext.models.show_dialog()
    dlg.folder.setText(str(folder))
    check = dlg.validate()
    assert check.ok and dlg.status.text().startswith("Ready") and dlg.missing.text() == "nothing"
    assert "unet" in dlg.present.text() and "GB" in dlg.vram.text()
    dlg.allow_cpu.setChecked(True)
    dlg.accept()

    def enabled() -> bool:
        i = window.backend_combo.findData("diffusion")
        return i >= 0 and window.backend_combo.model().item(i).isEnabled()

    qtbot.waitUntil(lambda: enabled() and window.jobs_idle(), timeout=WAIT_MS)


def test_latent_previews_show_on_the_canvas_while_a_job_runs(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    gate = threading.Event()

    def fake_diffusion(progress, token):  # type: ignore[no-untyped-def]
        progress(Progress(0.5, "refining 2/4", np.full((16, 16, 3), 0.25, np.float32)))
        gate.wait(10)

    window.bridge.submit(fake_diffusion, label="Full render", mode="replace", replace_key="full")
    qtbot.waitUntil(lambda: window.canvas.overlay.isVisible(), timeout=WAIT_MS)
    assert window.ext.latent.shown >= 1 and window.canvas.overlay.image.width() == 16
    assert "refining 2/4" in window.status_render.text()
    gate.set()
    qtbot.waitUntil(lambda: window.jobs_idle() and not window.canvas.overlay.isVisible(), timeout=WAIT_MS)


def test_plugins_dialog_and_problem_messages(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    from icportrait_studio.plugins.registry import PluginMessage

    dlg = window.ext.plugins.show_dialog()
    states = dlg.plugin_states()
    assert states.get("psd-export") in ("available", "loaded") and "ora-export" in states
    reg = window.ext.plugins.registry
    t = threading.Thread(target=reg._emit, args=(PluginMessage("broken-thing", "error", "import failed: boom"),))
    t.start()
    t.join()
    qtbot.waitUntil(lambda: "boom" in window.statusBar().currentMessage(), timeout=5000)
    assert "broken-thing" in dlg.log.toPlainText()
    dlg.close()


def test_plugins_dialog_turns_a_plugin_on_for_the_next_start(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The example plugin ships off: listed unticked; ticking it saves the choice (applies at the next start)."""
    from PySide6.QtCore import Qt

    from icportrait_studio.plugins.choices import PluginChoices, load_choices
    from icportrait_studio.plugins.registry import PluginRegistry, bundled_plugins_dir

    reg = PluginRegistry([bundled_plugins_dir()], entry_points=False,
                         choices=PluginChoices(path=tmp_path / "plugins.json"))
    reg.discover()
    window.ext.plugins.attach(reg)
    dlg = window.ext.plugins.show_dialog()
    items = {dlg.tree.topLevelItem(i).text(0): dlg.tree.topLevelItem(i) for i in range(dlg.tree.topLevelItemCount())}
    assert dlg.plugin_states()["example"] == "off"
    assert items["example"].checkState(0) == Qt.CheckState.Unchecked
    assert items["psd-export"].checkState(0) == Qt.CheckState.Checked
    items["example"].setCheckState(0, Qt.CheckState.Checked)  # what a click on the box does
    items["psd-export"].setCheckState(0, Qt.CheckState.Unchecked)
    saved = load_choices(tmp_path / "plugins.json")
    assert saved.on == {"example"} and saved.off == {"psd-export"}
    assert dlg.note.isVisibleTo(dlg) and "next time" in dlg.note.text()
    dlg.close()


def test_png_export_of_a_turned_head_carries_its_landmarks(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An exported turn, opened again, reuses where the engine moved the face (a fresh detection on a
    synthesised face under-reads the turn); a blend with the unturned photo carries nothing."""
    open_sample(window, qtbot)
    _wait_full(window, qtbot)
    front = window.renderer.cached(window.doc.rig, window.doc.view, window.doc.backend).landmarks
    assert window.props_panel.value("Face", "Face mesh") == "detected"
    window.view_panel.yaw_spin.setValue(25.0)
    qtbot.waitUntil(lambda: full_render_shown(window) and window.doc.view.yaw == 25.0, timeout=WAIT_MS)
    window.export_image(str(tmp_path / "turned.png"), 8)
    qtbot.waitUntil(lambda: (tmp_path / "turned.png").exists() and window.jobs_idle(), timeout=WAIT_MS)
    loaded = load_image(tmp_path / "turned.png")
    hit = window.renderer.cached(window.doc.rig, window.doc.view, window.doc.backend)
    assert loaded.landmarks is not None and hit.landmarks is not None
    assert np.abs(loaded.landmarks - hit.landmarks).max() < 0.01
    assert loaded.landmarks[1, 0] - front[1, 0] > 5  # the nose tip moved toward the image right
    open_sample(window, qtbot, tmp_path / "turned.png")  # opened again: analysed with what it carries
    assert window.doc.source_landmarks is not None
    qtbot.waitUntil(lambda: window._analysis is not None, timeout=WAIT_MS)
    assert np.abs(window._analysis.landmarks - loaded.landmarks[:, :2]).max() < 0.01
    assert window.props_panel.value("Face", "Face mesh").startswith("from the file")
    window.save_project(str(tmp_path / "turned.icps"))  # and they stay with its project
    qtbot.waitUntil(lambda: (tmp_path / "turned.icps").exists() and window.jobs_idle(), timeout=WAIT_MS)
    from icportrait_studio.core.project import load_project

    assert np.array_equal(load_project(tmp_path / "turned.icps")[0].source_landmarks, loaded.landmarks)
    window.doc.relit_layer.opacity = 0.5  # half the unturned photo shows through: no single face
    window.export_image(str(tmp_path / "blend.png"), 8)
    qtbot.waitUntil(lambda: (tmp_path / "blend.png").exists() and window.jobs_idle(), timeout=WAIT_MS)
    assert load_image(tmp_path / "blend.png").landmarks is None


def test_a_view_the_backend_could_not_make_is_said_in_the_status_bar(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A face too small to turn is relit unturned; the note used to reach only the Properties panel, so
    the view sphere said 20° and nothing said why the head had not moved."""
    open_sample(window, qtbot)
    doc = window.doc
    img = doc.relit_layer.pixels
    note = "the face is too small to turn (28 px across, 40 needed; crop closer): the view was not changed"
    req = EditRequest(doc.id, doc.rig, doc.view, doc.backend, quality="full")
    info = {"identity_distance": 0.01, "analysis": {"warnings": []}, "warnings": [note]}
    window.renderer._apply(RenderOutcome(req, img, np.zeros((*img.shape[:2], 4), np.uint8), None, info), force=True)
    assert window.statusBar().currentMessage() == f"Note: {note}"
    # a note the analysis already gave (shown when it finished) is not repeated on every render
    window.statusBar().clearMessage()
    info = {"identity_distance": 0.01, "analysis": {"warnings": ["2 faces found"]}, "warnings": ["2 faces found"]}
    window.renderer._apply(RenderOutcome(req, img, np.zeros((*img.shape[:2], 4), np.uint8), None, info), force=True)
    assert "2 faces found" not in window.statusBar().currentMessage()
