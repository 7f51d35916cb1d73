"""Unexpected errors in the app: written to a log file beside the settings, and said in the status bar."""

from __future__ import annotations

import logging
import os
import shutil
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import pytest
from test_ui_app import WAIT_MS, dialogs, isolated_config, make_window

from icportrait_studio.ui import app as app_module

__all__ = ["dialogs", "isolated_config"]  # fixtures re-used from test_ui_app


@pytest.mark.broken_handler
def test_a_broken_job_handler_is_logged_to_the_file_and_shown(qtbot, isolated_config: Path, dialogs,  # type: ignore[no-untyped-def]
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    monkeypatch.setattr(sys, "excepthook", sys.excepthook)  # restored after the test
    app_module._install_log_file()
    app_module._install_excepthook()
    added = [h for h in root.handlers if h not in before]
    win = make_window(qtbot)
    seen: list[int] = []
    try:
        def broken(_result: object) -> None:
            seen.append(1)
            raise RuntimeError("a handler bug")

        win.bridge.submit(lambda _p, _t: 1, label="probe", on_done=broken)
        win.bridge.submit(lambda _p, _t: 2, label="next", on_done=lambda r: seen.append(int(r)))  # type: ignore[arg-type]
        qtbot.waitUntil(lambda: len(seen) == 2, timeout=WAIT_MS)  # the next job's handler still ran
        message = win.statusBar().currentMessage()
        assert "RuntimeError: a handler bug" in message and str(app_module.log_path()) in message
        for handler in added:
            handler.flush()
        text = app_module.log_path().read_text(encoding="utf-8")
        assert "handler for job" in text and "probe" in text and "Traceback" in text and "a handler bug" in text
    finally:
        win.close()
        for handler in added:
            root.removeHandler(handler)
            handler.close()


def test_a_failing_autosave_is_said_once(qtbot, isolated_config: Path, dialogs) -> None:  # type: ignore[no-untyped-def]
    """Crash recovery that cannot write (a full disk, a settings folder that is not writable) must not fail
    unseen: the user is told once to save the project, not every five seconds."""
    from test_ui_app import open_sample

    from icportrait_studio.core.project import autosave_path

    isolated_config.mkdir(parents=True, exist_ok=True)
    autosave_path().parent.write_text("not a folder")  # the recovery folder cannot be made
    win = make_window(qtbot)
    try:
        open_sample(win, qtbot)
        win._autosave_timer.setInterval(20)
        win.apply_preset("butterfly")
        qtbot.waitUntil(lambda: "Autosave (crash recovery) failed" in win.statusBar().currentMessage(),
                        timeout=WAIT_MS)
        assert "Save the project" in win.statusBar().currentMessage()
        win.statusBar().clearMessage()
        win.apply_preset("split")  # the next autosave fails the same way: not said again
        qtbot.waitUntil(lambda: not win._autosaving and win.jobs_idle(), timeout=WAIT_MS)
        qtbot.wait(200)
        qtbot.waitUntil(lambda: not win._autosaving and win.jobs_idle(), timeout=WAIT_MS)
        assert "Autosave" not in win.statusBar().currentMessage()
        autosave_path().parent.unlink()  # the cause goes away: the next autosave works ...
        win.apply_preset("loop")
        qtbot.waitUntil(lambda: autosave_path().exists() and not win._autosaving and win.jobs_idle(),
                        timeout=WAIT_MS)
        shutil.rmtree(autosave_path().parent)
        autosave_path().parent.write_text("not a folder")  # ... and when it comes back, it is said again
        win.statusBar().clearMessage()
        win.apply_preset("butterfly")
        qtbot.waitUntil(lambda: "Autosave (crash recovery) failed" in win.statusBar().currentMessage(),
                        timeout=WAIT_MS)
        assert not dialogs["shown"]
    finally:
        win._close_approved = True
        win.close()
