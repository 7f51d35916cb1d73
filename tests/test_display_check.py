"""The app's start on Linux without a display, or without the library Qt's X11 plugin needs."""

from __future__ import annotations

import os
import subprocess
import sys

from icportrait_studio.ui.display_check import XCB_CURSOR_HINT, display_problem


def found(_name: str) -> str:
    return "libxcb-cursor.so.0"


def missing(_name: str) -> None:
    return None


def test_no_display_is_fatal_and_says_what_to_do() -> None:
    problem = display_problem({}, "linux", found)
    assert problem is not None and problem[1] and "DISPLAY" in problem[0] and "icportrait relight" in problem[0]
    assert display_problem({"QT_QPA_PLATFORM": "xcb"}, "linux", found)[1]  # type: ignore[index]


def test_x11_without_libxcb_cursor_gets_a_hint_but_may_go_on() -> None:
    assert display_problem({"DISPLAY": ":0"}, "linux", missing) == (XCB_CURSOR_HINT, False)
    assert display_problem({"DISPLAY": ":0"}, "linux", found) is None
    assert display_problem({"WAYLAND_DISPLAY": "wayland-0", "DISPLAY": ":0"}, "linux", missing) is None  # Wayland
    assert display_problem({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", missing) == (XCB_CURSOR_HINT, False)


def test_other_platforms_and_headless_qt_need_no_display() -> None:
    for env in ({"QT_QPA_PLATFORM": "offscreen"}, {"QT_QPA_PLATFORM": "vnc"}):
        assert display_problem(env, "linux", missing) is None
    assert display_problem({}, "darwin", missing) is None and display_problem({}, "win32", missing) is None


def test_the_app_command_without_a_display_exits_with_the_message() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    if not sys.platform.startswith("linux"):
        return
    run = subprocess.run([sys.executable, "-m", "icportrait_studio.cli", "app"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2 and "No display" in run.stderr and "Traceback" not in run.stderr
