"""Application start-up: Qt application, dark theme, the main window, then the photo.

Start-up is kept short on purpose (target: window shown within 2 s of launching Python): nothing
heavy is imported here, the window is built and shown first, and everything slower (face models,
backend checks, decoding the photo) happens afterwards on worker threads. mediapipe is first
imported by the warm-up job on the pipeline worker; torch/diffusers only ever by a backend that needs them.

``ICPORTRAIT_EXIT_WHEN_SHOWN=1`` makes ``run_app`` print ``ICPORTRAIT_SHOWN <seconds>`` (time since the
process started) once the window is exposed and quit: the cold-start benchmark uses it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from icportrait_studio.core.presets import resources_dir

log = logging.getLogger("icportrait.ui")


def _seconds_since_process_start() -> float:
    """How long ago this process was created (interpreter start-up included), to about 10 ms.

    Linux: /proc/self/stat's start time and /proc/uptime share one clock (psutil's create_time adds
    the boot time, which is only known to the second). Elsewhere psutil, else 0 (measure from here).
    """
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    try:
        import psutil

        return max(0.0, time.time() - float(psutil.Process().create_time()))
    except Exception:
        return 0.0


def apply_theme(app: object) -> None:
    """Fusion style + dark palette (for anything the stylesheet does not cover) + dark.qss."""
    from PySide6.QtGui import QColor, QPalette
    from PySide6.QtWidgets import QApplication

    assert isinstance(app, QApplication)
    app.setStyle("Fusion")
    pal = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1b1c1f", QPalette.ColorRole.WindowText: "#dcdfe4",
        QPalette.ColorRole.Base: "#1b1c1f", QPalette.ColorRole.AlternateBase: "#232529",
        QPalette.ColorRole.Text: "#dcdfe4", QPalette.ColorRole.Button: "#30333a",
        QPalette.ColorRole.ButtonText: "#dcdfe4", QPalette.ColorRole.Highlight: "#4f8ff7",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2c2f34",
        QPalette.ColorRole.ToolTipText: "#e8eaee", QPalette.ColorRole.PlaceholderText: "#7a808a",
        QPalette.ColorRole.Link: "#79a9ff", QPalette.ColorRole.Mid: "#383b41", QPalette.ColorRole.Dark: "#141517",
    }
    for role, colour in roles.items():
        pal.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        pal.setColor(QPalette.ColorGroup.Disabled, role, QColor("#646a73"))
    app.setPalette(pal)
    qss_path = resources_dir() / "theme" / "dark.qss"
    try:
        qss = qss_path.read_text(encoding="utf-8")
    except OSError:
        log.warning("theme file %s is missing; using the plain dark palette", qss_path)
        return
    app.setStyleSheet(qss.replace("ICONS", (resources_dir() / "icons").as_posix()))


LOG_BYTES = 1_000_000  # per log file; two older ones are kept


def log_path() -> Path:
    """Where the app's warnings and unexpected errors are written (beside its settings)."""
    from icportrait_studio.core.project import config_dir

    return config_dir() / "logs" / "icportrait-studio.log"


def _install_log_file() -> None:
    """Warnings and errors also go to a rotating file: an app started from a desktop icon has no terminal,
    and a bug report needs the traceback. Best effort: an unwritable folder leaves stderr alone."""
    from logging.handlers import RotatingFileHandler

    path = log_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(path, maxBytes=LOG_BYTES, backupCount=2, encoding="utf-8", delay=True)
    except OSError:
        return
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)


def _install_excepthook() -> None:
    """An unexpected error in a slot is logged and shown in the status bar; the app keeps running."""
    previous = sys.excepthook

    def hook(exc_type, exc, tb) -> None:  # type: ignore[no-untyped-def]
        if issubclass(exc_type, KeyboardInterrupt):
            previous(exc_type, exc, tb)
            return
        log.error("unexpected error", exc_info=(exc_type, exc, tb))
        from PySide6.QtWidgets import QApplication, QMainWindow

        for w in QApplication.topLevelWidgets():
            if isinstance(w, QMainWindow) and w.isVisible():
                w.statusBar().showMessage(f"Unexpected error: {exc_type.__name__}: {exc} (details in {log_path()})",
                                          20000)

    sys.excepthook = hook


def run_app(image_path: str | None = None, *, edit_target: object | None = None, exit_on_close: bool = False) -> int:
    """Show the editor (and open ``image_path`` if given); returns the exit code.

    ``edit_target`` (a ``plugins.edit_target.EditTarget``): be another app's external editor; Save writes
    the result back to that file. ``exit_on_close``: quit when the window closes (hosts wait for that)."""
    started = time.perf_counter() - _seconds_since_process_start()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from icportrait_studio.ui.display_check import display_problem

    problem = display_problem()
    if problem is not None:
        print(f"icportrait: {'error' if problem[1] else 'note'}: {problem[0]}", file=sys.stderr)
        if problem[1]:
            return 2
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("IC-Portrait Studio")
    app.setOrganizationName("IC-Portrait")
    app.setApplicationDisplayName("IC-Portrait Studio")
    apply_theme(app)
    _install_log_file()
    _install_excepthook()

    from icportrait_studio.ui.main_window import MainWindow

    window = MainWindow()
    if edit_target is not None:
        app.setQuitOnLastWindowClosed(True)
    exit_when_shown = os.environ.get("ICPORTRAIT_EXIT_WHEN_SHOWN", "") not in ("", "0")

    def shown() -> None:
        elapsed = time.perf_counter() - started
        print(f"ICPORTRAIT_SHOWN {elapsed:.3f}", flush=True)
        if exit_when_shown:
            window.close()
            app.quit()
            return
        QTimer.singleShot(0, startup)

    def startup() -> None:
        window.start_background()
        if edit_target is not None:
            window.ext.edit_mode.enter(edit_target, exit_on_close)  # type: ignore[arg-type]
        elif not window.offer_recovery() and image_path:
            window.open_path(image_path)

    class ExposeWatcher(QObject):
        """Fires once, on the first Expose event of the window's native surface (it is on screen)."""

        def __init__(self) -> None:
            super().__init__()
            self.fired = False

        def eventFilter(self, obj: QObject, event: QEvent) -> bool:
            if not self.fired and event.type() == QEvent.Type.Expose and window.windowHandle().isExposed():
                self.fired = True
                QTimer.singleShot(0, shown)  # after this expose has been painted
            return False

    watcher = ExposeWatcher()
    window.show()
    handle = window.windowHandle()
    if handle is not None and not handle.isExposed():
        handle.installEventFilter(watcher)
    else:
        QTimer.singleShot(0, shown)
    code = app.exec()
    return int(code)
