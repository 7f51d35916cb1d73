"""Closing the window right after opening a photo leaves nothing to fire into the closed job managers."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QMessageBox

from icportrait_studio.ui.main_window import MainWindow

SAMPLE = Path(__file__).resolve().parents[1] / "resources" / "samples" / "astronaut.png"


def test_close_soon_after_opening_raises_nothing_later(qtbot, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: QMessageBox.StandardButton.Discard)
    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    qtbot.waitExposed(win)
    with qtbot.waitSignal(win.documentOpened, timeout=30000):
        win.open_path(str(SAMPLE))
    win.close()
    # the base layer's display is released 2 s after opening; pytest-qt fails the test on any exception
    # raised in the event loop meanwhile ("JobManager is shut down" before the fix)
    qtbot.wait(2500)
    assert win.io.manager.closed
