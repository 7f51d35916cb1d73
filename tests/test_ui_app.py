"""The editor window with real widgets, offscreen: drags, renders, undo, jobs, projects, errors."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QEnterEvent, QImage, QKeySequence, QMouseEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox, QWidget

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.core.project import autosave_path
from icportrait_studio.core.request import EditRequest
from icportrait_studio.errors import CancelledError
from icportrait_studio.imaging.io import load_image
from icportrait_studio.jobs import JobState
from icportrait_studio.pipeline.progress import Progress
from icportrait_studio.ui.app import apply_theme
from icportrait_studio.ui.main_window import MainWindow
from icportrait_studio.ui.work import RenderOutcome, render_work

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"
TOL_16 = 6e-5  # one 16-bit sRGB step in linear light is at most ~2.6e-5
WAIT_MS = 30000  # generous: renders are ~0.1 s here, but a loaded 2-core CI machine can be 20x slower


@pytest.fixture(autouse=True)
def isolated_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cfg = tmp_path / "config"
    monkeypatch.setenv("ICPORTRAIT_CONFIG_DIR", str(cfg))
    return cfg


@pytest.fixture
def dialogs(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Modal dialogs would block offscreen: record them and answer ``answers['question']``."""
    box: dict = {"shown": [], "question": QMessageBox.StandardButton.Discard}

    def critical(_parent: QWidget, title: str, text: str, *_a: object) -> QMessageBox.StandardButton:
        box["shown"].append(("critical", title, text))
        return QMessageBox.StandardButton.Ok

    def question(_parent: QWidget, title: str, text: str, *_a: object) -> QMessageBox.StandardButton:
        box["shown"].append(("question", title, text))
        return box["question"]

    monkeypatch.setattr(QMessageBox, "critical", critical)
    monkeypatch.setattr(QMessageBox, "question", question)
    return box


def make_window(qtbot) -> MainWindow:  # type: ignore[no-untyped-def]
    apply_theme(QApplication.instance())
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


@pytest.fixture
def window(qtbot, dialogs):  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    yield win
    win.close()


def full_render_shown(win: MainWindow) -> bool:
    doc = win.doc
    if doc is None or not win.jobs_idle():
        return False
    relit = doc.relit_layer
    hit = win.renderer.cached(doc.rig, doc.view, doc.backend)
    return relit.quality == "full" and hit is not None and hit.image is relit.pixels


def open_sample(win: MainWindow, qtbot, path: Path = SAMPLE) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(win.documentOpened, timeout=WAIT_MS):
        win.open_path(str(path))
    qtbot.waitUntil(lambda: full_render_shown(win), timeout=WAIT_MS)


def drag(widget: QWidget, start: QPointF, end: QPointF, steps: int = 12) -> None:
    """Press, move with the button held, release: real mouse events into the widget."""
    QTest.mousePress(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start.toPoint())
    for i in range(1, steps + 1):
        p = start + (end - start) * (i / steps)
        ev = QMouseEvent(QEvent.Type.MouseMove, p, widget.mapToGlobal(p), Qt.MouseButton.NoButton,
                         Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(widget, ev)
        QApplication.processEvents()
    QTest.mouseRelease(widget, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end.toPoint())


def face_halves(win: MainWindow, pixels: np.ndarray) -> tuple[float, float]:
    """Mean luminance of the left and right halves of the face (from the analysis landmarks)."""
    lm = win._analysis.landmarks  # type: ignore[union-attr]
    x0, x1 = np.percentile(lm[:, 0], [5, 95])
    y0, y1 = np.percentile(lm[:, 1], [20, 80])
    xm = (x0 + x1) / 2
    lum = pixels @ np.array([0.2126, 0.7152, 0.0722], np.float32)
    rows = slice(int(y0), int(y1))
    return float(lum[rows, int(x0):int(xm)].mean()), float(lum[rows, int(xm):int(x1)].mean())


def test_gizmo_drag_moves_light_and_relights_the_right_side(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    frontal = LightRig(lights=(Light(azimuth=0.0, elevation=0.0, intensity=1.0, size=0.2),), ambient=0.05)
    window.light_panel.setRig(frontal, emit=True)
    qtbot.waitUntil(lambda: full_render_shown(window) and window.doc.rig == frontal, timeout=WAIT_MS)
    left0, right0 = face_halves(window, window.doc.relit_layer.pixels)

    gizmo = window.light_panel.gizmo
    painted: list[int] = []
    window.canvas.painted.connect(painted.append)
    drag(gizmo, gizmo.handlePosition(0), gizmo.pointFor(70.0, 0.0))
    light = window.doc.rig.lights[0]
    assert 55.0 < light.azimuth < 85.0 and abs(light.elevation) < 8.0
    assert window.light_panel.rig() == window.doc.rig
    assert window.undo_stack.undoText() == "Move light 1"
    qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
    shown = window.doc.relit_layer.request_id
    qtbot.waitUntil(lambda: bool(painted) and max(painted) >= shown, timeout=5000)  # the canvas showed it
    left1, right1 = face_halves(window, window.doc.relit_layer.pixels)
    assert right1 / left1 > 1.3 * (right0 / left0), (left0, right0, left1, right1)


def test_undo_redo_restore_rig_and_layers_exactly(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    doc = window.doc

    def state() -> tuple:
        d = window.doc
        return (d.rig, d.view, [(la.uid, la.name, la.visible, la.opacity) for la in d.layers],
                d.relit_layer.pixels.copy())

    s0 = state()
    window.apply_preset("rembrandt")
    qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
    s1 = state()
    assert s1[0] != s0[0] and not np.array_equal(s1[3], s0[3])
    base = doc.layers[0]
    window.layers_panel.row(base.uid).eye.click()  # hide the photo layer
    window.layers_panel.row(doc.relit_layer.uid).opacity.setValue(60)
    s2 = state()
    assert s2[2] != s1[2] and window.undo_stack.count() == 3

    def check(expected: tuple) -> None:
        got = state()
        assert got[:3] == expected[:3]
        assert np.array_equal(got[3], expected[3])  # pixels exactly, not just close
        assert window.light_panel.rig() == expected[0]

    window.undo_stack.undo()
    window.undo_stack.undo()
    check(s1)
    window.undo_stack.undo()
    check(s0)
    window.undo_stack.redo()
    check(s1)
    window.undo_stack.redo()
    window.undo_stack.redo()
    check(s2)
    assert window.layers_panel.row(base.uid).eye.isChecked() is False
    qtbot.waitUntil(window.jobs_idle, timeout=WAIT_MS)


def test_cancel_a_running_job(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    started = threading.Event()

    def slow(progress, token):  # type: ignore[no-untyped-def]
        started.set()
        while not token.cancelled:
            progress(Progress(0.3, "waiting"))
            time.sleep(0.005)
        raise CancelledError()

    window.jobs_dock.raise_()
    job = window.bridge.submit(slow, label="Slow test job")
    assert started.wait(5)
    tree = window.jobs_panel.tree

    def row():  # type: ignore[no-untyped-def]
        for i in range(tree.topLevelItemCount()):
            item = tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == job.id and item.text(0).startswith("Slow test job"):
                return item
        return None

    qtbot.waitUntil(lambda: row() is not None and row().text(1) == "running", timeout=5000)
    button = tree.itemWidget(row(), 3)
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: row().text(1).startswith("cancelled"), timeout=5000)
    assert window.bridge.manager.get(job.id).state is JobState.CANCELLED
    assert not button.isEnabled()

    started.clear()
    job2 = window.bridge.submit(slow, label="Slow test job")
    assert started.wait(5)
    assert window.actions_.cancel_jobs.shortcut() == QKeySequence("Ctrl+.")
    window.actions_.cancel_jobs.trigger()
    qtbot.waitUntil(lambda: window.bridge.manager.get(job2.id).state is JobState.CANCELLED, timeout=5000)


def test_replace_mode_and_stale_results_are_dropped(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    doc, renderer = window.doc, window.renderer
    applied: list[tuple[str, int]] = []
    window.renderApplied.connect(lambda q, rid: applied.append((q, rid)))
    gate, gate_running = threading.Event(), threading.Event()

    def hold(p, t):  # type: ignore[no-untyped-def]
        gate_running.set()
        return gate.wait(10)

    window.bridge.submit(hold, label="Gate")
    assert gate_running.wait(5)  # the worker is busy before any render is queued (no race with the first)
    rigs = [replace(doc.rig, lights=(Light(azimuth=10.0 * i, elevation=20.0),)) for i in range(1, 6)]
    # An older full request that finishes last (lower priority), then a drag's worth of previews.
    old = EditRequest(doc.id, rigs[0], doc.view, doc.backend, quality="full")
    window.bridge.submit(render_work(doc.backend, old, renderer.full_source, doc.size, False), label="Old render",
                         priority=-1, on_done=renderer._apply)
    old_full = old.request_id
    previews = [renderer.preview(rig, doc.view, doc.backend) for rig in rigs[1:]]
    assert all(p > old_full for p in previews)
    gate.set()
    qtbot.waitUntil(window.jobs_idle, timeout=WAIT_MS)
    # Only the newest preview ran and was shown; the older full render finished later and was dropped.
    assert applied == [("preview", previews[-1])]
    assert renderer.stats["dropped"] >= 1
    assert doc.relit_layer.request_id == previews[-1] == window.canvas.displayed_request_id
    # A late result of an older request never replaces a newer picture.
    late = RenderOutcome(EditRequest(doc.id, rigs[1], quality="preview", request_id=previews[0]),
                         np.zeros((8, 8, 3), np.float32), np.zeros((8, 8, 3), np.uint8), None, {})
    renderer._apply(late)
    assert doc.relit_layer.request_id == previews[-1] and applied[-1][1] == previews[-1]


@pytest.mark.slow
def test_save_close_open_project_restores_everything(qtbot, dialogs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    open_sample(win, qtbot)
    win.apply_preset("rembrandt")
    win.view_panel.yaw_spin.setValue(12.0)  # the view is recorded (and carried by every request)
    doc = win.doc
    win.layers_panel.row(doc.layers[0].uid).eye.click()
    win.layers_panel.row(doc.relit_layer.uid).opacity.setValue(70)
    qtbot.waitUntil(lambda: full_render_shown(win), timeout=WAIT_MS)
    path = tmp_path / "portrait.icps"
    win.save_project(str(path))
    qtbot.waitUntil(lambda: path.exists() and not win.is_dirty() and win.jobs_idle(), timeout=WAIT_MS)
    expected = {
        "rig": doc.rig, "view": doc.view,
        "layers": [(la.name, la.kind, la.visible, la.opacity) for la in doc.layers],
        "relit": doc.relit_layer.pixels.copy(),
        "history": [win.undo_stack.text(i) for i in range(win.undo_stack.count())],
        "index": win.undo_stack.index(),
    }
    assert expected["view"].yaw == 12.0 and len(expected["history"]) == 4
    win.close()
    assert not win.isVisible() and not [d for d in dialogs["shown"] if d[0] == "question"]

    win2 = make_window(qtbot)
    with qtbot.waitSignal(win2.documentOpened, timeout=WAIT_MS):
        win2.open_path(str(path))
    qtbot.waitUntil(win2.jobs_idle, timeout=WAIT_MS)
    d2 = win2.doc
    assert d2.rig == expected["rig"] and d2.view == expected["view"]
    assert [(la.name, la.kind, la.visible, la.opacity) for la in d2.layers] == expected["layers"]
    assert np.abs(d2.relit_layer.pixels - np.clip(expected["relit"], 0, 1)).max() < TOL_16
    assert [win2.undo_stack.text(i) for i in range(win2.undo_stack.count())] == expected["history"]
    assert win2.undo_stack.index() == expected["index"] and not win2.is_dirty()
    assert win2.light_panel.rig() == expected["rig"] and win2.view_panel.view() == (12.0, 0.0)
    win2.undo_stack.undo()  # the reopened history still works
    assert d2.layers[1].opacity == 1.0
    qtbot.waitUntil(win2.jobs_idle, timeout=WAIT_MS)
    win2.close()


def test_bad_file_shows_error_and_keeps_document(window: MainWindow, qtbot, dialogs, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    doc, layers = window.doc, list(window.canvas.stack.layers)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 50)
    window.open_path(str(bad))
    qtbot.waitUntil(lambda: any(d[0] == "critical" for d in dialogs["shown"]), timeout=WAIT_MS)
    _kind, title, text = next(d for d in dialogs["shown"] if d[0] == "critical")
    assert "Cannot open" in title and "broken.png" in text
    assert window.doc is doc and window.canvas.stack.layers == layers and not window.is_dirty()
    assert "broken.png" not in window.windowTitle()


def test_screenshot_is_not_blank(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    window.actions_.mesh.setChecked(True)
    QApplication.processEvents()
    shot = window.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    shot.save(str(tmp_path / "window.png"))
    arr = np.frombuffer(shot.constBits(), np.uint8).reshape(shot.height(), shot.bytesPerLine())
    arr = arr[:, : shot.width() * 3].reshape(shot.height(), shot.width(), 3)
    assert arr.std() > 20  # not one flat colour
    canvas = window.canvas.grab().toImage().convertToFormat(QImage.Format.Format_RGB888)
    c = np.frombuffer(canvas.constBits(), np.uint8).reshape(canvas.height(), canvas.bytesPerLine())
    centre = c[canvas.height() // 2 - 20: canvas.height() // 2 + 20, canvas.width() * 3 // 2 - 60:
               canvas.width() * 3 // 2 + 60]
    assert centre.std() > 10  # the portrait is painted, not the empty background


def test_export_png_jpeg_and_16_bit_tiff(window: MainWindow, qtbot, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    for name, bits in (("out.tif", 16), ("out.jpg", 8), ("out.png", 8)):
        window.export_image(str(tmp_path / name), bits)
    qtbot.waitUntil(lambda: all((tmp_path / n).exists() for n in ("out.tif", "out.jpg", "out.png"))
                    and window.jobs_idle(), timeout=WAIT_MS)
    tif = load_image(tmp_path / "out.tif")
    assert tif.bit_depth == 16 and tif.size == (512, 512)
    assert np.abs(tif.rgb - np.clip(window.doc.flatten(), 0, 1)).max() < TOL_16


def test_unsaved_changes_are_asked_about_on_close(window: MainWindow, qtbot, dialogs) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    window.apply_preset("split")
    assert window.is_dirty() and window.isWindowModified()
    dialogs["question"] = QMessageBox.StandardButton.Cancel
    assert window.close() is False and window.isVisible()
    dialogs["question"] = QMessageBox.StandardButton.Discard
    assert window.close() is True and not window.isVisible()
    assert sum(d[0] == "question" for d in dialogs["shown"]) == 2


@pytest.mark.slow
def test_autosave_and_recovery(qtbot, dialogs) -> None:  # type: ignore[no-untyped-def]
    win = make_window(qtbot)
    open_sample(win, qtbot)
    win._autosave_timer.setInterval(20)
    win.apply_preset("butterfly")
    qtbot.waitUntil(lambda: autosave_path().exists() and win.jobs_idle(), timeout=WAIT_MS)
    rig = win.doc.rig
    win._close_approved = True  # simulate a crash: the window goes away without cleaning up
    win.io.shutdown()
    win.bridge.shutdown()
    win.hide()
    assert autosave_path().exists()

    win2 = make_window(qtbot)
    dialogs["question"] = QMessageBox.StandardButton.Yes
    with qtbot.waitSignal(win2.documentOpened, timeout=WAIT_MS):
        assert win2.offer_recovery()
    assert win2.doc.rig == rig and win2.is_dirty() and win2.doc.project_path is None
    qtbot.waitUntil(win2.jobs_idle, timeout=WAIT_MS)
    dialogs["question"] = QMessageBox.StandardButton.Discard
    win2.close()
    assert not autosave_path().exists()  # a clean exit removes the recovery file


def test_window_starts_without_heavy_libraries(tmp_path: Path) -> None:
    """Building and showing the editor imports neither torch/diffusers nor mediapipe (the worker loads
    mediapipe later, off the GUI thread)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from PySide6.QtWidgets import QApplication\n"
        "app = QApplication([])\n"
        "from icportrait_studio.ui.main_window import MainWindow\n"
        "w = MainWindow(); w.show(); app.processEvents(); w.close()\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'mediapipe') if m in sys.modules))\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "ICPORTRAIT_CONFIG_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_failing_backend_shows_error_and_app_keeps_working(window: MainWindow, qtbot,  # type: ignore[no-untyped-def]
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from icportrait_studio.pipeline import registry

    class Broken:
        name = "broken"

        def available(self) -> tuple[bool, str]:
            return True, "test backend that always fails"

        def run(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("GPU on fire")

    monkeypatch.setitem(registry._factories, "broken", Broken)
    monkeypatch.setitem(registry._instances, "broken", Broken())
    open_sample(window, qtbot)
    window.backend_combo.set_backends([("physical", True, "cpu"), ("broken", True, "test")])
    window.backend_combo.backendChosen.emit("broken")
    window.jobs_dock.raise_()
    qtbot.waitUntil(lambda: "GPU on fire" in window.statusBar().currentMessage(), timeout=WAIT_MS)
    # the preview fails first; the full render queued behind it fails a moment later
    qtbot.waitUntil(lambda: window.job_status.label.text() == "Render failed", timeout=WAIT_MS)
    tree = window.jobs_panel.tree
    failed = [tree.topLevelItem(i) for i in range(tree.topLevelItemCount())
              if tree.topLevelItem(i).text(1).startswith("failed")]
    assert failed and "GPU on fire" in failed[0].toolTip(1)
    window.undo_stack.undo()  # back to the physical backend: renders work again
    qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
    assert window.doc.backend == "physical" and window.backend_combo.current() == "physical"


def test_canvas_zoom_pan_and_before_after(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    open_sample(window, qtbot)
    canvas = window.canvas
    fit = canvas.zoom()
    window.actions_.zoom_100.trigger()
    assert canvas.zoom() == pytest.approx(1.0)
    vp = canvas.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    wheel = QWheelEvent(centre, vp.mapToGlobal(centre), QPoint(), QPoint(0, 240), Qt.MouseButton.NoButton,
                        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, wheel)
    assert canvas.zoom() > 1.3  # two wheel notches: about 20 % each
    before = canvas.mapToScene(vp.rect().center())
    QTest.mousePress(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(200, 200))
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(120, 150), vp.mapToGlobal(QPointF(120, 150)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, move)
    QTest.mouseRelease(vp, Qt.MouseButton.MiddleButton, Qt.KeyboardModifier.NoModifier, QPoint(120, 150))
    after = canvas.mapToScene(vp.rect().center())
    assert after.x() > before.x() and after.y() > before.y()  # dragged left/up: the view moved right/down
    # Space held while the pointer is over the image pans with the left button, wherever the focus is.
    QApplication.sendEvent(canvas, QEnterEvent(QPointF(50, 50), QPointF(50, 50), vp.mapToGlobal(QPointF(50, 50))))
    window.layers_panel.list.setFocus()
    QTest.keyPress(window.layers_panel.list, Qt.Key.Key_Space)
    assert canvas._space
    start = canvas.mapToScene(vp.rect().center())
    QTest.mousePress(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(300, 300))
    move = QMouseEvent(QEvent.Type.MouseMove, QPointF(340, 300), vp.mapToGlobal(QPointF(340, 300)),
                       Qt.MouseButton.NoButton, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(vp, move)
    QTest.mouseRelease(vp, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, QPoint(340, 300))
    QTest.keyRelease(window.layers_panel.list, Qt.Key.Key_Space)
    assert not canvas._space and canvas.mapToScene(vp.rect().center()).x() < start.x()
    window.actions_.fit.trigger()
    assert canvas.zoom() == pytest.approx(fit)
    window.actions_.before.trigger()
    assert canvas.stack.show_before and window.actions_.before.shortcut() == QKeySequence("B")
    window.actions_.split.trigger()  # split and before are exclusive
    assert canvas.stack.split and not canvas.stack.show_before
    canvas.set_split_pos(0.25)
    shot = canvas.grab().toImage()
    assert not shot.isNull()


@pytest.mark.parametrize("case", ["no-face", "several-faces"])
def test_unusual_photos_open_with_a_note_not_a_crash(window: MainWindow, qtbot, dialogs, tmp_path: Path,
                                                      case: str) -> None:  # type: ignore[no-untyped-def]
    """A photo without a face, or with several, opens, relights, and says what it did about it."""
    src = np.asarray(Image.open(SAMPLE).convert("RGB"))
    if case == "no-face":
        yy, xx = np.mgrid[0:300, 0:400]
        img = np.dstack([xx * 255 // 400, yy * 255 // 300, np.full_like(xx, 90)]).astype(np.uint8)
        needle = "no face"
    else:
        head = src[0:300, 100:360]
        img = np.vstack([np.hstack([head] * 3), np.hstack([head] * 3)])
        needle = "faces found"
    path = tmp_path / f"{case}.png"
    Image.fromarray(img).save(path)
    messages: list[str] = []
    window.statusBar().messageChanged.connect(messages.append)
    with qtbot.waitSignal(window.analysisShown, timeout=WAIT_MS):
        window.open_path(str(path))
    qtbot.waitUntil(lambda: full_render_shown(window), timeout=WAIT_MS)
    assert not [d for d in dialogs["shown"] if d[0] == "critical"]
    assert any(needle in m for m in messages), messages
    assert window._analysis is not None and any(needle in w for w in window._analysis.summary["warnings"])
    relit = window.doc.relit_layer.pixels
    assert relit is not None and np.isfinite(relit).all() and relit.shape[:2] == img.shape[:2]


@pytest.fixture
def example_plugin_on(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The example plugin ships off: turn it on as a user would (the choices file), for this test only."""
    import icportrait_studio.core.presets as presets_mod
    import icportrait_studio.pipeline.registry as backends_mod
    from icportrait_studio.plugins.choices import load_choices
    from icportrait_studio.plugins.registry import reset_default_registry

    monkeypatch.setattr(presets_mod, "_extra_dirs", list(presets_mod._extra_dirs))
    monkeypatch.setattr(backends_mod, "_factories", dict(backends_mod._factories))
    monkeypatch.setattr(backends_mod, "_instances", dict(backends_mod._instances))
    choices = load_choices()
    choices.set("example", True)
    choices.save()
    reset_default_registry()
    yield
    assert choices.path is not None
    choices.path.unlink()
    reset_default_registry()


def test_a_plugin_backend_is_offered_and_renders_when_chosen(window: MainWindow, qtbot, example_plugin_on) -> None:  # type: ignore[no-untyped-def]
    """The bundled example plugin, turned on, contributes 'example-gain' (photo × total intensity)."""
    open_sample(window, qtbot)
    window.start_background()  # what the app does once the window is shown
    combo = window.backend_combo
    qtbot.waitUntil(lambda: combo.findData("example-gain") >= 0, timeout=WAIT_MS)
    i = combo.findData("example-gain")
    assert combo.model().item(i).isEnabled()  # type: ignore[attr-defined]
    shown = window.doc.relit_layer.request_id
    combo.setCurrentIndex(i)
    combo.activated.emit(i)  # what a user's pick sends
    assert window.doc.backend == "example-gain"
    qtbot.waitUntil(lambda: window.doc.relit_layer.request_id != shown and window.jobs_idle()
                    and window.doc.relit_layer.quality == "full", timeout=WAIT_MS)
    rig = window.doc.rig
    gain = rig.ambient + sum(light.intensity for light in rig.lights if light.enabled)
    expected = np.clip(window.doc.base * np.float32(gain), 0, 1)
    assert np.abs(window.doc.relit_layer.pixels - expected).max() < 1e-5
    assert window.undo_stack.text(window.undo_stack.index() - 1) == "Backend: example-gain"


def test_touchpad_pinch_zooms_the_canvas(window: MainWindow, qtbot) -> None:  # type: ignore[no-untyped-def]
    """A trackpad pinch arrives as native zoom gestures (macOS, and libinput touchpads since Qt 6.2)."""
    from PySide6.QtGui import QNativeGestureEvent, QPointingDevice

    open_sample(window, qtbot)
    canvas = window.canvas
    window.actions_.zoom_100.trigger()
    vp = canvas.viewport()
    centre = QPointF(vp.width() / 2, vp.height() / 2)
    device = QPointingDevice.primaryPointingDevice()

    def pinch(value: float) -> None:
        ev = QNativeGestureEvent(Qt.NativeGestureType.ZoomNativeGesture, device, 2, centre, centre,
                                 vp.mapToGlobal(centre), value, QPointF(), 1)
        QApplication.sendEvent(vp, ev)

    for _ in range(4):  # fingers apart: four steps of +10 %
        pinch(0.1)
    assert canvas.zoom() == pytest.approx(1.1 ** 4, rel=1e-3)
    for _ in range(4):  # and together again
        pinch(-0.1)
    assert canvas.zoom() == pytest.approx((1.1 * 0.9) ** 4, rel=1e-3)


def _open_with(win: MainWindow, qtbot, action) -> None:  # type: ignore[no-untyped-def]
    with qtbot.waitSignal(win.documentOpened, timeout=WAIT_MS):
        action()
    qtbot.waitUntil(lambda: full_render_shown(win), timeout=WAIT_MS)


def test_open_as_linear_light_reads_values_as_light_and_remembers_it(window: MainWindow, qtbot, tmp_path: Path,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    values = np.asarray(Image.open(SAMPLE).convert("RGB"))
    path = tmp_path / "capture.png"
    Image.fromarray(values).save(path)  # untagged: "auto" reads it as sRGB
    other = tmp_path / "other.png"
    Image.fromarray(values[::2, ::2]).save(other)

    # the menu entry, through its file dialog
    menu_texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "Open as &Linear Light…" in menu_texts
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(path), ""))
    _open_with(window, qtbot, window.actions_.open_linear.trigger)
    doc = window.doc
    assert doc is not None and doc.encoding == "linear"
    assert np.allclose(doc.base, values / 255.0, atol=1e-3)  # the file's values are the light
    assert window.props_panel.value("Image", "Values") == "linear light"
    relit = doc.relit_layer.pixels
    assert relit is not None and np.isfinite(relit).all()

    # the plain Open reads the same file as sRGB: darker mid-tones in linear light
    _open_with(window, qtbot, lambda: window.open_path(str(other)))
    assert window.doc.encoding == "srgb" and window.props_panel.value("Image", "Values") == "sRGB-encoded"
    assert float(window.doc.base.mean()) < 0.8 * float(values[::2, ::2].mean() / 255.0)

    # reopening from Open Recent reads it as it was opened
    window._fill_recent()
    entries = {a.text(): a for a in window.recent_menu.actions()}
    linear_entry = [a for t, a in entries.items() if "capture.png" in t]
    assert linear_entry and "(linear light)" in linear_entry[0].text()
    assert not any("(linear light)" in t for t in entries if "other.png" in t)
    _open_with(window, qtbot, linear_entry[0].trigger)
    assert window.doc.encoding == "linear"
