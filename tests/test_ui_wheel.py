"""Scrolling the docked panels never edits a control the pointer passes over."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox, QScrollArea

from icportrait_studio.ui.main_window import MainWindow

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"


def _wheel(widget, steps: int) -> None:  # type: ignore[no-untyped-def]
    pos = QPointF(widget.width() / 2, widget.height() / 2)
    event = QWheelEvent(pos, QPointF(widget.mapToGlobal(pos.toPoint())), QPoint(0, 0), QPoint(0, -120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(widget, event)


def test_wheel_over_an_unfocused_control_scrolls_the_panel_instead(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # a modal question would block offscreen (closing with unsaved edits asks one)
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    win = MainWindow()
    qtbot.addWidget(win)
    win.resize(1200, 500)  # short: the light panel needs its scroll bar
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.documentOpened, timeout=30000):  # the panels are enabled with a document
        win.open_path(str(SAMPLE))
    settled = lambda: win.jobs_idle() and win.doc.relit_layer.quality == "full"  # noqa: E731
    qtbot.waitUntil(settled, timeout=30000)
    panel = win.light_panel
    spin = panel.azimuth_spin
    area = next(a for a in win.findChildren(QScrollArea) if a.widget() is not None and a.widget().isAncestorOf(spin))
    bar = area.verticalScrollBar()
    assert bar.maximum() > 0
    before, scrolled = spin.value(), bar.value()
    _wheel(spin, 3)
    assert spin.value() == before  # not edited ...
    assert bar.value() > scrolled  # ... the panel scrolled
    _wheel(panel.intensity.slider, 2)
    _wheel(panel.preset_combo, 1)
    assert panel.rig().lights[0].intensity == 1.0 and panel.rig().name == "loop"
    for row in win.layers_panel._rows.values():  # the layer list's opacity sliders too
        value = row.opacity.value()
        _wheel(row.opacity, 3)
        assert row.opacity.value() == value
    spin.setFocus()
    qtbot.waitUntil(spin.hasFocus, timeout=2000)
    _wheel(spin, 1)
    assert spin.value() != before  # a focused box takes wheel steps as usual
    qtbot.waitUntil(settled, timeout=30000)  # the relight that step asked for, before the window goes
    win.close()
